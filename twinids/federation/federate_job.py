"""`federate(cfg)`: the plain function behind `twinids federate`: checks, the parent run, the engine, the result.

Every setting is checked, and every client's config composed, before the parent MLflow run exists.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from twinids.errors import TwinIDSError


@dataclass(frozen=True)
class FederationResult:
    """The parent run, its final metrics, and how long the federation took."""

    run_id: str
    metrics: dict[str, float]
    seconds: float


def federate(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    client_app: Any = None,
    tags: Mapping[str, str] | None = None,
) -> FederationResult:
    """Train the configured detector across the clients of `cfg.federation` and track it in MLflow.

    Args:
        cfg: the composed `federate` config.
        overrides: the overrides that composed it (logged with the run).
        client_app: the ClientApp the simulation engine runs (default: twinids's; tests wrap it to make a client
            fail). The deployment engine runs the ClientApp each SuperNode loads.
        tags: extra MLflow tags on the parent run (e.g. a sweep's parent run id and config hash).
    """
    settings = check_federation(cfg)
    if settings.engine == "deployment":
        from twinids.federation.deployment import submit

        run_id, metrics = submit(cfg, overrides, settings, tags)
        return FederationResult(run_id, metrics, float(metrics.get("time/federate_s", 0.0)))
    if settings.engine == "pooled":
        from twinids.federation.pooled import run_pooled_engine

        return tracked_federation(cfg, overrides, lambda tracker: run_pooled_engine(cfg, tracker, settings), tags)
    return tracked_federation(
        cfg,
        overrides,
        lambda tracker: final_weights(run_simulation_engine(cfg, tracker, len(settings.clients), client_app)),
        tags,
    )


def check_federation(cfg: DictConfig) -> Any:
    """Every check made before a run or a process exists: job settings, federation, clients' data keys, DP
    settings and an unreachable ε, the tracking store. Returns the FederationSettings."""
    from twinids.config import require_complete
    from twinids.federation.clients import client_config
    from twinids.federation.settings import FederationSettings, refuse_unsupported_jobs
    from twinids.tracking.store import check_store, resolve_tracking_uri, sqlite_database
    from twinids.training.job import check_job_settings

    require_complete(cfg)
    check_job_settings(cfg)
    refuse_unsupported_jobs(cfg)
    settings = FederationSettings.from_config(cfg.federation)
    for name in settings.clients:
        client_config(cfg, settings, name)  # a client's unknown data key is refused here
    if cfg.privacy.name == "dp":
        from twinids.privacy.settings import DPSettings

        DPSettings.from_config(cfg.privacy)
    if settings.client_dp.enabled:
        from twinids.federation.server import client_noise

        client_noise(settings)  # an unreachable target ε is refused before any run
    if sqlite_database(resolve_tracking_uri(cfg.tracking.uri, create_folder=False)) is None:
        check_store(cfg.tracking.uri)
    return settings


def final_weights(result: Any) -> dict[str, Any] | None:
    """The global net's weights in Flower's Result of a strategy (None when no round released any)."""
    arrays = getattr(result, "arrays", None)
    return arrays.to_torch_state_dict() if arrays is not None and len(arrays) else None


def tracked_federation(
    cfg: DictConfig,
    overrides: Sequence[str],
    engine: Callable[[Any], dict[str, Any] | None],
    extra_tags: Mapping[str, str] | None = None,
) -> FederationResult:
    """The parent run and the clients' child runs around `engine(tracker)`, which runs the rounds.

    `engine(tracker)` returns the final global weights. The runs end FINISHED, or KILLED on Ctrl-C or a signal, or
    FAILED on an error, all together.
    """
    from twinids.federation.settings import FederationSettings
    from twinids.federation.tracking import FederationTracker
    from twinids.tracking.config_hash import hash_tags
    from twinids.tracking.run import start_run
    from twinids.training.job import job_tags, quiet_tracking

    cfg = copy.deepcopy(cfg)
    settings = FederationSettings.from_config(cfg.federation)
    quiet_tracking()
    quiet_flower()
    tags = {**job_tags(cfg, "federate"), **hash_tags(cfg), "twinids.federation.engine": settings.engine}
    tags |= dict(extra_tags or {})
    if settings.client_dp.enabled:
        tags["twinids.federation.client_dp"] = settings.client_dp.clipping
    began = time.perf_counter()
    with start_run(cfg.tracking.mlflow_experiment, cfg.tracking.uri, cfg.run_name, tags) as parent, ExitStack() as kids:
        print(f"federation run {parent.run_id}", flush=True)
        parent.log_config(cfg, list(overrides))
        tracker = FederationTracker(parent, cfg, settings, kids)
        metrics = tracker.finish(engine(tracker))
        metrics["time/federate_s"] = time.perf_counter() - began
        parent.log_metrics({"time/federate_s": metrics["time/federate_s"]})
    return FederationResult(parent.run_id, metrics, metrics["time/federate_s"])


def run_simulation_engine(cfg: DictConfig, tracker: Any, n_clients: int, client_app: Any = None) -> Any:
    """Flower's simulation engine: the ServerApp in this process, one virtual SuperNode per client on Ray actors
    (one CPU each). A ServerApp error is raised here, not left in Flower's log."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from twinids.federation.client_app import app as twinids_client_app
    from twinids.federation.server import serve

    outcome: dict[str, Any] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Any, context: Any) -> None:
        try:
            outcome["result"] = serve(grid, cfg, tracker.start, tracker.round)
        except BaseException as error:
            outcome["error"] = error
            raise

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPUs asked for: Ray's future default, quietly
    cpus = max(1, min(n_clients, len(os.sched_getaffinity(0))))
    started_ray = _start_ray(cpus)
    try:
        with flower_log_kept() as flower_errors:
            run_simulation(
                server_app=server_app,
                client_app=client_app or twinids_client_app,
                num_supernodes=n_clients,
                backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
            )
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    if "result" not in outcome:
        reason = flower_errors[-1] if flower_errors else "no error was logged"
        raise TwinIDSError(f"Flower's simulation ended without running the federation: {reason}")
    return outcome["result"]


def _start_ray(cpus: int) -> bool:
    """Start Ray for the simulation from this thread (Flower would start it from one of its own), and put back the
    signal handlers Ray's core worker replaces: its SIGTERM handler aborts the process, leaving runs RUNNING."""
    import signal
    import sys
    import threading

    import ray

    if ray.is_initialized():
        return False
    main_thread = threading.current_thread() is threading.main_thread()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {signum: signal.getsignal(signum) for signum in handled} if main_thread else {}
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        logging_level="error",
        log_to_driver=bool(os.environ.get("TWINIDS_DEBUG")),  # a client's failure comes back as its error reply
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}},  # actors import what this process can
    )
    for signum, handler in before.items():
        if handler is not None:
            signal.signal(signum, handler)
    return True


def quiet_flower() -> None:
    """Flower logs every message at INFO; twinids prints one line per round instead (all of it with --debug)."""
    if not os.environ.get("TWINIDS_DEBUG"):
        logging.getLogger("flwr").setLevel(logging.ERROR)


@contextmanager
def flower_log_kept() -> Iterator[list[str]]:
    """Keep Flower's log out of the output while its simulation runs (the rounds are printed by twinids, a client's
    failure is recorded as a drop, and a stop would log every actor Ray ends); yields the first lines of its errors,
    for a one-line refusal should the simulation end without a result. With --debug it is all shown."""
    errors: list[str] = []
    if os.environ.get("TWINIDS_DEBUG"):
        yield errors
        return

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage().strip()
            if record.levelno >= logging.ERROR and text:
                errors.append(text.splitlines()[-1][:300])

    logger = logging.getLogger("flwr")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers, logger.propagate = [Kept()], False
    logger.setLevel(logging.ERROR)
    try:
        yield errors
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
