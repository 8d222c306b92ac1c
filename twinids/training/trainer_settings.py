"""Lightning Trainer settings checked before any run exists, so a typo costs one line, not a FAILED run."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from twinids.errors import TwinIDSError

INTEGER_SETTINGS = {"max_epochs": -1, "min_epochs": 0, "log_every_n_steps": 1, "accumulate_grad_batches": 1}
FLAG_SETTINGS = ("deterministic", "enable_model_summary", "enable_progress_bar")


def check_trainer_settings(trainer_cfg: DictConfig) -> None:
    """Refuse trainer values of the wrong type or range, and an accelerator this machine lacks, naming the key."""
    for key, minimum in INTEGER_SETTINGS.items():
        value = trainer_cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise TwinIDSError(f"trainer.{key} must be an integer >= {minimum}; got {value!r}")
    if trainer_cfg.get("max_epochs") == 0:  # Lightning would train nothing, save no checkpoint, and the run fail
        raise TwinIDSError("trainer.max_epochs must be at least 1 (or -1: until early stopping); got 0")
    for key in FLAG_SETTINGS:
        value = trainer_cfg.get(key)
        if value is not None and not isinstance(value, bool):
            raise TwinIDSError(f"trainer.{key} must be true or false; got {value!r}")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = trainer_cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise TwinIDSError(f"trainer.{key} must be a share in [0, 1] or a batch count; got {value!r}")
        if isinstance(value, float) and value > 1:
            raise TwinIDSError(f"trainer.{key} as a share must be in [0, 1]; got {value!r}")
    clip = trainer_cfg.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or clip < 0):
        raise TwinIDSError(f"trainer.gradient_clip_val must be null or a number >= 0; got {clip!r}")
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise TwinIDSError(
                f"trainer.accelerator={accelerator} but torch sees no CUDA GPU on this machine; use "
                "trainer.accelerator=cpu (or auto)"
            )
    _probe(trainer_cfg)


def _probe(trainer_cfg: DictConfig) -> None:
    """Build a throwaway Trainer: whatever else Lightning refuses is refused now, in one line."""
    from twinids.config import build

    build(
        trainer_cfg,
        "trainer (check the trainer.* settings)",
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def planned_steps_per_epoch(trainer_cfg: DictConfig, batches_per_epoch: int) -> int:
    """Training steps Lightning takes per epoch, given `trainer.limit_train_batches`."""
    limit: Any = trainer_cfg.get("limit_train_batches", 1.0)
    if limit is None:
        return batches_per_epoch
    if isinstance(limit, float):  # a share of the epoch, as Lightning reads it
        return int(batches_per_epoch * limit)
    return min(int(limit), batches_per_epoch)  # an integer is a batch count (1 means one batch)
