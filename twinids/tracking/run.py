"""One MLflow run per job: created before training, ended FINISHED, or FAILED/KILLED if anything raises."""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.errors import first_line
from twinids.interrupts import JobInterrupted, signals_ignored
from twinids.tracking.store import prepare_store, store_errors

CONFIG_ARTIFACT = "config/config.yaml"
OVERRIDES_ARTIFACT = "config/overrides.txt"
CHECKPOINT_ARTIFACT_DIR = "checkpoints"
# Ending a run waits this many times for a store another process keeps locked (MLflow waits 20 s each time).
END_ATTEMPTS = 3
END_RETRY_PAUSE_S = 1.0

_log = logging.getLogger(__name__)


class TrackedRun:
    """An open MLflow run and the Lightning logger that writes into it."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.client = logger.experiment
        self.run_id: str = logger.run_id
        self.tracking_uri: str = logger._tracking_uri

    def log_config(self, cfg: DictConfig, overrides: list[str]) -> None:
        """Log the resolved config as flattened params and as YAML, and the overrides that composed it."""
        container = OmegaConf.to_container(cfg, resolve=True)
        self.logger.log_hyperparams(container)
        self.log_text(OmegaConf.to_yaml(cfg, resolve=True), CONFIG_ARTIFACT)
        self.log_text("\n".join(overrides) + ("\n" if overrides else ""), OVERRIDES_ARTIFACT)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store a text artifact at `artifact_file` inside the run."""
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Store a matplotlib figure as an image artifact."""
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_file(self, path: Path, artifact_dir: str) -> None:
        """Copy a local file into the run's artifacts under `artifact_dir`."""
        self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log several metrics in one batched write."""
        self.logger.log_metrics(dict(metrics), step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (keys as given, values as text)."""
        self.logger.log_hyperparams(dict(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) tags of the run."""
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))


@contextmanager
def start_run(
    experiment: str,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> Iterator[TrackedRun]:
    """Open a run; it ends FINISHED on success, KILLED on Ctrl-C or a signal, FAILED on any other exception.

    Without `run_name` a new run gets a distinct readable one (see `default_run_name`). With `run_id` the
    existing run continues (a resumed training) and is marked RUNNING again; name and tags are left as they are.

    Raises:
        TwinIDSError: before the run exists, if the tracking store cannot be reached, read or written.
    """
    uri = prepare_store(experiment, tracking_uri)
    logger = _logger_class()(
        experiment_name=experiment,
        run_name=None if run_id else run_name or default_run_name(experiment, tags),
        tracking_uri=uri,
        tags=None if run_id else {k: str(v) for k, v in (tags or {}).items()},
        run_id=run_id,
        synchronous=True,
    )
    with store_errors(uri):
        run = TrackedRun(logger)  # creates the MLflow run, or finds the one to continue
        if run_id:
            run.client.update_run(run_id, status="RUNNING")
    try:
        yield run
    except (KeyboardInterrupt, JobInterrupted) as stop:
        _release_interrupted_writes(stop)
        _end(run, "KILLED")
        raise
    except BaseException:
        _end(run, "FAILED")
        raise
    with store_errors(uri):
        _terminate(run, "FINISHED")


def _logger_class() -> type:
    """Lightning's MLflow logger, minus its habit of ending the run when a `fit` or `test` call ends.

    A job runs fit and then test in one run: Lightning would mark it FINISHED between the two (a job killed
    during its test phase would then look finished) and FAILED on any exception. `start_run` alone decides.
    """
    from pytorch_lightning.loggers import MLFlowLogger

    class RunLogger(MLFlowLogger):
        def finalize(self, status: str = "success") -> None:
            """Leave the run's status to `start_run`."""

    return RunLogger


def default_run_name(experiment: str, tags: Mapping[str, Any] | None = None) -> str:
    """A readable run name no other run shares: `[<job>-]<model>-<dataset>-<6 hex>` from the twinids tags.

    Falls back to `<experiment>-<6 hex>` without them; the job is named unless it is `train`. The suffix comes
    from `secrets`, so seeding Python, numpy and torch (which MLflow's own name picker uses) never repeats it.
    """
    tags = tags or {}
    parts = [str(tags[key]) for key in ("twinids.model", "twinids.dataset") if tags.get(key)] or [experiment]
    if tags.get("twinids.job") not in (None, "", "train"):
        parts.insert(0, str(tags["twinids.job"]))
    return "-".join([*parts, secrets.token_hex(3)])


def _release_interrupted_writes(stop: BaseException) -> None:
    """Free what a database write cut short by `stop` still holds, so its SQLite lock is released.

    SQLAlchemy closes a connection cut short by a signal while the statement's cursor lives on in the traceback's
    frames; SQLite keeps that "zombie" connection's transaction, and its write lock, until the statement is freed.
    `twinids.interrupts` keeps signals out of database writes; this covers a write stuck longer than it waits.
    """
    import gc
    import traceback

    traceback.clear_frames(stop.__traceback__)
    gc.collect()


def _end(run: TrackedRun, status: str) -> None:
    """Mark a run that is being left by an exception; a store failing too must not hide that exception.

    The command is already stopping, so further signals are ignored until the status is written. Should the
    store refuse even after `_terminate`'s retries, one line says so (the exception's own line follows).
    """
    with signals_ignored():
        try:
            _terminate(run, status)
        except Exception as error:
            _log.warning("warning: run %s could not be marked %s: %s", run.run_id, status, first_line(error))


def _terminate(run: TrackedRun, status: str) -> None:
    """Write the run's final status, waiting up to `END_ATTEMPTS` times for a store another process keeps locked.

    MLflow logs a traceback of every failed database write; the caller reports the failure in one line instead.
    """
    quiet = logging.getLogger("mlflow.store.db.utils")
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        for attempt in range(1, END_ATTEMPTS + 1):
            try:
                run.client.set_terminated(run.run_id, status)
                return
            except Exception as error:
                if "locked" not in str(error) or attempt == END_ATTEMPTS:
                    raise
                time.sleep(END_RETRY_PAUSE_S)
    finally:
        quiet.disabled = was_disabled


def temporary_directory() -> tempfile.TemporaryDirectory:
    """A scratch folder for files downloaded from or staged for the tracking store."""
    return tempfile.TemporaryDirectory(prefix="twinids-")
