"""Find what `twinids train --resume` continues: the stopped run's last checkpoint, config and MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError

LAST_CHECKPOINT = "last.ckpt"


@dataclass(frozen=True)
class ResumedJob:
    """A training job to continue: its config and overrides as trained, its checkpoint and MLflow run."""

    cfg: DictConfig
    overrides: list[str]
    checkpoint: Path
    run_id: str


def resolve_resume(source: str, overrides: list[str], tracking_uri: str | None) -> ResumedJob:
    """The job behind `--resume SOURCE` (an MLflow run id, or a `last.ckpt` file of a stopped run).

    Raises:
        TwinIDSError: for overrides (a resumed run keeps its config), a missing checkpoint, or a run that
            already finished.
    """
    from twinids.config import compose
    from twinids.training.checkpoint_io import read_card

    if overrides:
        raise TwinIDSError(
            f"--resume continues a run with the config it was started with; overrides are not allowed ({overrides})"
        )
    path = Path(source)
    if path.is_file():
        checkpoint = path
    else:
        output_dir = Path(str(compose([]).paths.output_dir)).resolve()
        checkpoint = output_dir / source / "checkpoints" / LAST_CHECKPOINT
        if not checkpoint.is_file():
            raise TwinIDSError(
                f"no {LAST_CHECKPOINT} for run '{source}' at {checkpoint}; pass the run id of a training run "
                "started in this folder, or the path of its last.ckpt"
            )
    card = read_card(checkpoint)
    cfg = OmegaConf.create(card.config)
    if tracking_uri:
        cfg.tracking.uri = tracking_uri
    _refuse_finished(card.run_id, cfg.tracking.uri)
    return ResumedJob(cfg, card.overrides, checkpoint, card.run_id)


def _refuse_finished(run_id: str, tracking_uri: str | None) -> None:
    """A run that finished has nothing left to train."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from twinids.tracking.store import check_store

    uri = check_store(tracking_uri, writable=False)
    try:
        status = MlflowClient(uri).get_run(run_id).info.status
    except MlflowException:
        raise TwinIDSError(f"run '{run_id}' of this checkpoint is not in the tracking store {uri}") from None
    if status == "FINISHED":
        raise TwinIDSError(f"run '{run_id}' already finished; start a new run instead of resuming it")
