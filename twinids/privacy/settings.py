"""The `privacy=dp` settings, checked before any run exists; refusals say why a setting would void DP-SGD."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from twinids.errors import TwinIDSError
from twinids.privacy.audit_settings import CanaryAudit
from twinids.privacy.engine import ACCOUNTANTS, CLIPPING_MODES


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD settings of one training job (the `privacy` config group with `name: dp`).

    Exactly one of `target_epsilon` (σ is then calibrated for the planned steps) and `noise_multiplier`.
    """

    target_epsilon: float | None
    noise_multiplier: float | None
    delta: float
    max_grad_norm: float
    accountant: str
    clipping: str
    max_physical_batch_size: int | None
    secure_mode: bool
    audit: CanaryAudit

    @classmethod
    def from_config(cls, privacy_cfg: Any) -> DPSettings:
        """Read and check `cfg.privacy`; raise TwinIDSError naming the key for anything DP-SGD cannot honour."""
        target = _optional_positive(privacy_cfg.target_epsilon, "privacy.target_epsilon")
        sigma = _optional_positive(privacy_cfg.noise_multiplier, "privacy.noise_multiplier")
        if (target is None) == (sigma is None):
            raise TwinIDSError(
                "privacy=dp needs exactly one of privacy.target_epsilon (σ is calibrated to reach it at the "
                "planned epochs) and privacy.noise_multiplier (ε is then whatever the steps spend); "
                f"got target_epsilon={privacy_cfg.target_epsilon}, noise_multiplier={privacy_cfg.noise_multiplier}"
            )
        delta = _optional_positive(privacy_cfg.delta, "privacy.delta")
        if delta is None or delta >= 1:
            raise TwinIDSError(f"privacy.delta must be in (0, 1); got {privacy_cfg.delta}")
        max_grad_norm = _optional_positive(privacy_cfg.max_grad_norm, "privacy.max_grad_norm")
        if max_grad_norm is None:
            raise TwinIDSError("privacy.max_grad_norm must be set: it bounds each window's influence, e.g. 1.0")
        accountant, clipping = str(privacy_cfg.accountant), str(privacy_cfg.clipping)
        if accountant not in ACCOUNTANTS:
            raise TwinIDSError(
                f"privacy.accountant must be one of {list(ACCOUNTANTS)}, got '{accountant}': both bound ε from "
                "above ('prv' is tighter)"
            )
        if clipping not in CLIPPING_MODES:
            raise TwinIDSError(
                f"privacy.clipping must be one of {sorted(CLIPPING_MODES)}, got '{clipping}': 'ghost' computes "
                "per-window gradient norms only (fast), 'per_sample' materialises per-window gradients"
            )
        physical = privacy_cfg.max_physical_batch_size
        if physical is not None and (isinstance(physical, bool) or not isinstance(physical, int) or physical < 1):
            raise TwinIDSError(f"privacy.max_physical_batch_size must be null or an integer >= 1; got {physical!r}")
        secure = privacy_cfg.secure_mode
        if not isinstance(secure, bool):
            raise TwinIDSError(f"privacy.secure_mode must be true or false; got {secure!r}")
        if secure:
            _require_secure_rng()
        audit = CanaryAudit.from_config(privacy_cfg)
        return cls(target, sigma, delta, max_grad_norm, accountant, clipping, physical, secure, audit)


def refuse_trainer_settings_that_void_dp(trainer_cfg: Any, settings: DPSettings) -> None:
    """Refuse Lightning settings that break DP-SGD's accounting, saying why and what to use instead."""
    clip = trainer_cfg.get("gradient_clip_val")
    if clip not in (None, 0, 0.0):
        raise TwinIDSError(
            f"trainer.gradient_clip_val={clip} cannot be used with privacy=dp: Lightning clips the whole batch's "
            "gradient before Opacus adds noise (silently ignored with per-sample clipping, rescaling the "
            "clipped sum with ghost clipping), so the noise would not match what is accounted; DP-SGD already "
            "clips each window's gradient to privacy.max_grad_norm. Set trainer.gradient_clip_val=null"
        )
    accumulate = trainer_cfg.get("accumulate_grad_batches", 1)
    if accumulate != 1:
        raise TwinIDSError(
            f"trainer.accumulate_grad_batches={accumulate} cannot be used with privacy=dp: the accountant counts "
            "one Poisson-sampled batch per noisy step, and accumulating batches changes the sampling rate. Raise "
            "data.batch_size instead, with privacy.max_physical_batch_size to bound memory"
        )
    if trainer_cfg.get("max_steps", -1) not in (-1, None):
        raise TwinIDSError(
            "trainer.max_steps cannot be used with privacy=dp: the privacy plan counts whole epochs of "
            "Poisson-sampled steps; set trainer.max_epochs instead"
        )
    limit = trainer_cfg.get("limit_train_batches", 1.0)
    if settings.max_physical_batch_size is not None and not (isinstance(limit, float) and limit == 1.0):
        raise TwinIDSError(
            "trainer.limit_train_batches cannot be combined with privacy.max_physical_batch_size: Lightning would "
            "count physical batches and could stop inside a logical (noisy) step"
        )
    epochs = trainer_cfg.get("max_epochs")
    if settings.target_epsilon is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise TwinIDSError(
            f"privacy.target_epsilon needs a planned number of epochs (trainer.max_epochs >= 1); got {epochs!r}"
        )


def _optional_positive(value: Any, key: str) -> float | None:
    """None, or a finite number > 0; anything else is a one-line error naming `key`."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TwinIDSError(f"{key} must be a number > 0; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TwinIDSError(f"{key} must be a number > 0; got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise TwinIDSError(f"{key} must be a finite number > 0; got {value!r}")
    return number


def _require_secure_rng() -> None:
    """Secure mode draws noise and samples from a cryptographic RNG, which Opacus takes from torchcsprng."""
    try:
        import torchcsprng  # noqa: F401
    except ImportError:
        raise TwinIDSError(
            "privacy.secure_mode=true needs the torchcsprng package (Opacus draws noise and Poisson samples "
            "from its cryptographic RNG), and it is not installed; install it, or set privacy.secure_mode=false "
            "for experiments (the guarantee then assumes an attacker cannot predict torch's RNG)"
        ) from None
