"""Fit and test neural detectors with a Lightning Trainer built from the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from twinids.data.prepare import WindowedData
from twinids.errors import TwinIDSError


def build_module(cfg: DictConfig, n_features: int, class_names: list[str], train_counts: np.ndarray) -> Any:
    """The LightningModule for `cfg.model`, sized to the data."""
    import torch

    from twinids.config import build
    from twinids.training.module import DetectorModule

    net = build(cfg.model.net, f"model '{cfg.model.name}'", n_features=n_features, n_classes=len(class_names))
    weighting = cfg.model.get("class_weights", "none")
    if weighting not in ("none", "balanced"):
        raise TwinIDSError(f"unknown model.class_weights '{weighting}'; valid: none, balanced")
    weights = None
    if weighting == "balanced":
        counts = np.maximum(train_counts, 1).astype(np.float64)
        weights = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
    return DetectorModule(net, build(cfg.model.optimizer, "model.optimizer"), class_names, weights)


def datamodule_for(cfg: DictConfig, data: WindowedData) -> Any:
    """The datamodule serving `data` with the config's batch sizes."""
    from twinids.data.datamodule import WindowDataModule

    return WindowDataModule(data, cfg.data.batch_size, cfg.data.eval_batch_size, cfg.data.num_workers)


def fit_neural(
    cfg: DictConfig, data: WindowedData, module: Any, logger: Any, record: dict[str, Any], run_dir: Path
) -> tuple[dict[str, float], Path, np.ndarray]:
    """Train with early stopping on validation macro-F1, then test the best checkpoint."""
    from hydra.utils import instantiate

    from twinids.training.checkpoint import RunRecord

    checkpointing = instantiate(cfg.callbacks.model_checkpoint, dirpath=run_dir / "checkpoints")
    callbacks = [instantiate(cfg.callbacks.early_stopping), checkpointing, RunRecord(record)]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir))
    datamodule = datamodule_for(cfg, data)
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1); report it as the interrupt it was
            raise KeyboardInterrupt from None
        raise
    if not checkpointing.best_model_path:
        raise TwinIDSError(
            f"training saved no checkpoint (is '{checkpointing.monitor}' logged, and did any epoch finish?); "
            "check trainer.max_epochs and trainer.limit_val_batches"
        )
    best = Path(checkpointing.best_model_path)
    metrics, confusion = test_neural(cfg, data, module, logger, best)
    return metrics, best, confusion


def test_neural(
    cfg: DictConfig, data: WindowedData, module: Any, logger: Any, checkpoint: Path
) -> tuple[dict[str, float], np.ndarray]:
    """Load a checkpoint into `module` and compute test metrics (logged through `logger`)."""
    from hydra.utils import instantiate

    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[], default_root_dir=str(checkpoint.parent))
    results = trainer.test(module, datamodule=datamodule_for(cfg, data), ckpt_path=str(checkpoint), verbose=False)
    metrics = {name: float(value) for name, value in results[0].items()}
    return metrics, module.test_confusion.compute().numpy()
