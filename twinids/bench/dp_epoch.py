"""One training epoch of the default LSTM on the default data, non-private vs DP-SGD, through Lightning.

Both use the real `twinids train` pieces (LightningDetector: datamodule, module, Poisson-sampled loader,
Opacus optimiser and ghost-clipping loss) and a Lightning Trainer; validation is off so that only the
training epoch is timed. Epochs alternate between the two, and each figure is the median of its repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl


class _EpochTimer(pl.Callback):
    """Wall seconds of each training epoch, from its first batch fetch to its end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._began = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._began = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._began)


def _epoch_seconds(cfg: Any, data: Any) -> float:
    from twinids.training.detector import make_detector

    detector = make_detector(cfg, data)
    timer = _EpochTimer()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        deterministic=True,
    )
    trainer.fit(detector.module, datamodule=detector.datamodule)
    return timer.seconds[0]


def measure_dp_epoch(overrides: Sequence[str] = (), repeats: int = 3, canaries: int = 1000) -> dict[str, float]:
    """Median seconds of one training epoch: plain, under DP-SGD (σ = 1, ghost clipping, the plain batch size, so
    both take the same steps), and under DP-SGD with `canaries` white-box audit canaries; and their ratios."""
    from twinids.config import compose
    from twinids.data.registry import build_windows

    plain_cfg = compose(list(overrides))
    private = [*overrides, "privacy=dp", "privacy.noise_multiplier=1.0", f"data.batch_size={plain_cfg.data.batch_size}"]
    configs = {
        "plain": plain_cfg,
        "dp": compose(private),
        "canary_dp": compose([*private, f"privacy.audit.canaries={canaries}"]),
    }
    data = build_windows(plain_cfg.data)
    _epoch_seconds(plain_cfg, data)  # warm-up: allocator, thread pool, imports
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, cfg in configs.items():
            seconds[name].append(_epoch_seconds(cfg, data))
    plain_s, dp_s, canary_s = (statistics.median(seconds[name]) for name in configs)
    return {
        "plain_epoch_s": plain_s,
        "dp_epoch_s": dp_s,
        "canary_dp_epoch_s": canary_s,
        "dp_epoch_vs_plain_epoch_ratio": dp_s / plain_s,
        "canary_dp_epoch_vs_dp_epoch_ratio": canary_s / dp_s,
        "epoch_train_windows": float(len(data.starts["train"])),
        "epoch_canaries": float(canaries),
    }
