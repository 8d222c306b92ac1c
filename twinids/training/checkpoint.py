"""What a checkpoint carries besides weights: the run's resolved config, overrides and classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError

RECORD_KEY = "twinids"


class RunRecord(pl.Callback):
    """Stores the run description in every checkpoint, so a checkpoint alone can rebuild its model and data."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[RECORD_KEY] = self.record


def make_run_record(
    cfg: DictConfig, overrides: list[str], class_names: list[str], feature_names: list[str], run_id: str
) -> dict[str, Any]:
    """The run description saved beside the weights: enough to rebuild the model and its data."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "overrides": list(overrides),
        "class_names": list(class_names),
        "n_features": len(feature_names),
        "feature_names": list(feature_names),
        "run_id": run_id,
    }


def read_run_record(checkpoint_path: Path) -> dict[str, Any]:
    """The run description stored in a twinids checkpoint (.ckpt or .joblib); TwinIDSError if it is not one."""
    if not checkpoint_path.is_file():
        raise TwinIDSError(f"checkpoint not found: {checkpoint_path}")
    try:
        if checkpoint_path.suffix == ".joblib":
            import joblib

            checkpoint = joblib.load(checkpoint_path)
        else:
            import torch

            checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TwinIDSError(f"cannot read checkpoint {checkpoint_path}: {reason}") from error
    if not isinstance(checkpoint, dict) or RECORD_KEY not in checkpoint:
        raise TwinIDSError(f"{checkpoint_path} is not a twinids checkpoint (no run record inside)")
    return checkpoint[RECORD_KEY]
