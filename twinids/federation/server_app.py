"""The ServerApp a SuperLink runs for `twinids federate federation.engine=deployment` (its component in the app's
pyproject.toml): the config and overrides come in the run config; it logs the runs exactly as the simulation does."""

from __future__ import annotations

import json

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from twinids.federation.messages import CONFIG_YAML_KEY, OVERRIDES_KEY, TAGS_KEY

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation the submitted config describes, tracked in the MLflow store it names."""
    import threading

    from omegaconf import OmegaConf

    from twinids.federation.federate_job import final_weights, tracked_federation
    from twinids.federation.server import serve
    from twinids.interrupts import install_signal_handlers

    if threading.current_thread() is threading.main_thread():
        install_signal_handlers()  # `flwr stop` ends this process with SIGTERM: the runs end KILLED
    cfg = OmegaConf.create(str(context.run_config[CONFIG_YAML_KEY]))
    overrides = json.loads(str(context.run_config[OVERRIDES_KEY]))
    tags = json.loads(str(context.run_config.get(TAGS_KEY, "{}")))
    result = tracked_federation(
        cfg, overrides, lambda tracker: final_weights(serve(grid, cfg, tracker.start, tracker.round)), tags
    )
    print(f"federation finished: run {result.run_id}", flush=True)
