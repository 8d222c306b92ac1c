"""One MLflow run per job: created before training, ended FINISHED, or FAILED/KILLED if anything raises."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.tracking.store import artifact_root, resolve_tracking_uri

CONFIG_ARTIFACT = "config/config.yaml"
OVERRIDES_ARTIFACT = "config/overrides.txt"
CHECKPOINT_ARTIFACT_DIR = "checkpoints"


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


@contextmanager
def start_run(
    experiment: str,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[TrackedRun]:
    """Open a run; it ends FINISHED on success, KILLED on Ctrl-C and FAILED on any other exception."""
    from pytorch_lightning.loggers import MLFlowLogger

    uri = resolve_tracking_uri(tracking_uri)
    _ensure_experiment(uri, experiment)
    logger = MLFlowLogger(
        experiment_name=experiment,
        run_name=run_name,
        tracking_uri=uri,
        tags={k: str(v) for k, v in (tags or {}).items()},
        synchronous=True,
    )
    run = TrackedRun(logger)
    try:
        yield run
    except KeyboardInterrupt:
        run.client.set_terminated(run.run_id, "KILLED")
        raise
    except BaseException:
        run.client.set_terminated(run.run_id, "FAILED")
        raise
    run.client.set_terminated(run.run_id, "FINISHED")


def _ensure_experiment(tracking_uri: str, name: str) -> None:
    """Create the experiment with its artifacts beside a SQLite store, so runs are portable with the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        root = artifact_root(tracking_uri)
        client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


def temporary_directory() -> tempfile.TemporaryDirectory:
    """A scratch folder for files downloaded from or staged for the tracking store."""
    return tempfile.TemporaryDirectory(prefix="twinids-")
