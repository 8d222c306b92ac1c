"""Launching many jobs: sweeps over configs (parent and child runs, resume by config hash, worker pools, submitit),
Optuna tuning, and paper-table reproduction that drives them."""
