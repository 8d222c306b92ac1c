"""Runs made on a trained run (an attack on its detector, a response study with it), found again by their settings.

A follow-up run carries a key: a hash of (the trained run's id, its resolved settings). `reproduce` asks for the
finished run with that key before running one, as sweeps reuse finished runs by config hash.
"""

from __future__ import annotations

import hashlib
from typing import Any


def follow_up_key(run_id: str, cfg: Any) -> str:
    """A hash of (trained run, resolved settings): equal keys mean the same follow-up of the same run.

    Unset (null) settings hash as absent, as in the config hash, so a setting added later, off by default, leaves
    the keys of earlier runs as they were.
    """
    from twinids.tracking.config_hash import config_hash

    return hashlib.sha256(f"{run_id}:{config_hash(cfg, ignored=())}".encode()).hexdigest()[:16]


def finished_follow_up(tag: str, key: str, tracking_uri: str) -> str | None:
    """The id of a finished run whose `tag` holds `key`, if the store holds one."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, f"attributes.status = 'FINISHED' and tags.`{tag}` = '{key}'", max_results=1)
    return found[0].info.run_id if found else None
