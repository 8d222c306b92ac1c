"""Studies over many runs: sweep plans, config hashes for resume, comparison tables and plots, the dashboard."""
