"""DP-SGD for one Lightning training job: the shared state between the LightningModule and the datamodule.

The module hands its net, optimiser and loss to `make_private` in `configure_optimizers`; the datamodule
asks `training_loader` for the Poisson-sampled loader. Sampling, clipping, noise and accounting are all
Opacus's (through `twinids.privacy.engine.make_private`); this object plans σ for the planned steps, keeps the
accountant's history and the sampler's RNG across checkpoints, and reports ε.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from opacus.accountants.utils import get_noise_multiplier
from opacus.utils.batch_memory_manager import wrap_data_loader
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader

from twinids.errors import TwinIDSError
from twinids.privacy.canaries import WhiteBoxCanaries
from twinids.privacy.engine import PrivateTraining, make_private
from twinids.privacy.lstm import to_private_lstm
from twinids.privacy.settings import DPSettings

ACCOUNTANTS_REPORTED = ("rdp", "prv")  # ε is logged under both, whichever one calibrated σ


class DPSGD:
    """Plans and runs DP-SGD for a training loader of `len(plain_loader)` batches per epoch.

    Args:
        settings: the checked `privacy` settings.
        plain_loader: the non-private training loader; its length sets the sampling rate q = 1/len (each
            window joins each batch independently with probability q) and the steps per epoch.
        planned_epochs: epochs the trainer plans (σ is calibrated for them when a target ε is given).
        steps_per_epoch: steps Lightning takes per epoch (fewer than len(plain_loader) under
            `trainer.limit_train_batches`).
        seed: seeds the Poisson sampler's own RNG (saved in checkpoints, so a resumed run continues it).

    Raises:
        TwinIDSError: for δ >= 1/n (the guarantee would allow releasing a whole window) or a target ε that no
            noise level reaches.
    """

    def __init__(
        self,
        settings: DPSettings,
        plain_loader: DataLoader,
        planned_epochs: int,
        steps_per_epoch: int,
        seed: int,
    ) -> None:
        self.settings = settings
        self.plain_loader = plain_loader
        self.n_train = len(plain_loader.dataset)  # type: ignore[arg-type]
        if settings.delta >= 1 / self.n_train:
            raise TwinIDSError(
                f"privacy.delta={settings.delta:g} is not below 1/n = {1 / self.n_train:.3g} for {self.n_train} "
                "training windows: a δ that large permits releasing some window outright; use e.g. "
                f"privacy.delta={10 ** math.floor(math.log10(0.1 / self.n_train)):g}"
            )
        self.sample_rate = 1 / len(plain_loader)
        self.expected_batch_size = self.n_train * self.sample_rate
        self.planned_steps = planned_epochs * steps_per_epoch
        self.noise_multiplier = settings.noise_multiplier or self._calibrate(settings.target_epsilon)
        self.sampler_generator = None if settings.secure_mode else torch.Generator().manual_seed(seed)
        self.private: PrivateTraining | None = None
        self._pending_state: dict[str, Any] | None = None
        self.canaries: WhiteBoxCanaries | None = None

    def _calibrate(self, target_epsilon: float | None) -> float:
        """σ that spends `target_epsilon` (within Opacus's tolerance, never above) over the planned steps."""
        try:
            return float(
                get_noise_multiplier(
                    target_epsilon=float(target_epsilon),  # type: ignore[arg-type]
                    target_delta=self.settings.delta,
                    sample_rate=self.sample_rate,
                    steps=self.planned_steps,
                    accountant=self.settings.accountant,
                    epsilon_tolerance=0.01,
                )
            )
        except ValueError as error:
            raise TwinIDSError(
                f"privacy.target_epsilon={target_epsilon} cannot be reached in {self.planned_steps} steps at "
                f"sample rate {self.sample_rate:.4g} ({error}); raise the target or lower trainer.max_epochs"
            ) from None

    def check_model(self, net: nn.Module) -> None:
        """Refuse layers whose per-sample gradients mix windows (BatchNorm), before any run exists."""
        problems = ModuleValidator.validate(to_private_lstm(net), strict=False)
        if problems:
            raise TwinIDSError(
                "the model has layers DP-SGD cannot train privately: "
                + "; ".join(str(p).splitlines()[0] for p in problems)
                + ". Per-sample gradients need layers that do not mix windows (use GroupNorm or LayerNorm "
                "instead of BatchNorm)"
            )

    def make_private(self, net: nn.Module, optimizer: torch.optim.Optimizer, loss: nn.Module) -> tuple[Any, Any]:
        """Hook `net` for per-sample gradients (or their norms) and wrap `optimizer` in Opacus's DP optimizer.

        Returns:
            (the DP optimizer, the loss to call in training_step: Opacus's ghost-clipping criterion, or `loss`).
        """
        if self.private is not None:  # Lightning calls configure_optimizers once per fit; a second fit re-hooks
            if self._pending_state is None:  # and continues the same accountant (a federated client's next round)
                self._pending_state = {"accountant": dict(self.private.engine.accountant.state_dict())}
            self.private.module.cleanup()
        self.private = make_private(
            net,
            optimizer,
            self.plain_loader,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.settings.max_grad_norm,
            clipping=self.settings.clipping,  # type: ignore[arg-type]
            accountant=self.settings.accountant,
            criterion=loss,
            loss_reduction="mean",
            secure_mode=self.settings.secure_mode,
            wrap_model=False,
            sampler_generator=self.sampler_generator,
        )
        if self._pending_state is not None:
            self.private.engine.accountant.load_state_dict(self._pending_state["accountant"])
            self._pending_state = None
        audit = self.settings.audit
        if audit.count and audit.kind == "white_box":
            self.canaries = WhiteBoxCanaries(
                list(self.private.optimizer.params),
                audit.count,
                self.settings.max_grad_norm,
                self.sample_rate,
                audit.seed,
                noise=self.noise_multiplier,
                score=audit.score,
            )
            self.canaries.attach(self.private.optimizer)
        return self.private.optimizer, self.private.criterion

    def canary_audit(self) -> dict[str, float] | None:
        """The white-box audit's figures (`epsilon_lower` beside the claimed ε), or None without its canaries."""
        return None if self.canaries is None else self.canaries.audit(self.settings.audit.delta)

    def training_loader(self, plain_loader: DataLoader) -> Any:
        """The Poisson-sampled loader (split into physical batches when `max_physical_batch_size` is set)."""
        if self.private is None:
            raise RuntimeError("DPSGD.training_loader called before make_private (configure_optimizers)")
        loader = self.private.data_loader
        if self.settings.max_physical_batch_size is None:
            return loader
        split = wrap_data_loader(
            data_loader=loader, max_batch_size=self.settings.max_physical_batch_size, optimizer=self.private.optimizer
        )
        return _Unsized(split)

    @property
    def steps(self) -> int:
        """Noisy optimiser steps taken so far (the accountant's count)."""
        if self.private is None:
            history = (self._pending_state or {}).get("accountant", {}).get("history", [])
        else:
            history = self.private.engine.accountant.history
        return int(sum(entry[-1] for entry in history))

    def epsilon(self) -> float:
        """ε spent by the steps taken so far, as the accountant reports it (0 before the first step)."""
        if self.private is None or self.steps == 0:
            return 0.0
        return float(self.private.engine.accountant.get_epsilon(delta=self.settings.delta))

    def epsilon_under(self, mechanism: str) -> float:
        """ε of the steps taken so far under another of Opacus's accountants (`rdp`, `prv`), so tables compare
        with papers that use either; the run's own claim is `epsilon()`, from the accountant σ was calibrated with."""
        from opacus.accountants import create_accountant

        if self.steps == 0:
            return 0.0
        history = self.state_dict()["accountant"]["history"]
        accountant = create_accountant(mechanism)
        accountant.load_state_dict({"history": [(s, q, int(n)) for s, q, n in history], "mechanism": mechanism})
        return float(accountant.get_epsilon(delta=self.settings.delta))

    def summary(self) -> dict[str, Any]:
        """What the run spent and how: logged as `privacy.*` params and stored with the model."""
        return {
            "epsilon": self.epsilon(),
            **{f"epsilon_{mechanism}": self.epsilon_under(mechanism) for mechanism in ACCOUNTANTS_REPORTED},
            "delta": self.settings.delta,
            "target_epsilon": self.settings.target_epsilon,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.settings.max_grad_norm,
            "sample_rate": self.sample_rate,
            "expected_batch_size": self.expected_batch_size,
            "steps": self.steps,
            "planned_steps": self.planned_steps,
            "accountant": self.settings.accountant,
            "clipping": self.settings.clipping,
            "secure_mode": self.settings.secure_mode,
        }

    def state_dict(self) -> dict[str, Any]:
        """The accountant's history and the sampler's RNG state, as plain types and tensors (for checkpoints)."""
        accountant = (
            dict(self.private.engine.accountant.state_dict())
            if self.private is not None
            else (self._pending_state or {}).get("accountant", {"history": [], "mechanism": self.settings.accountant})
        )
        accountant["history"] = [tuple(float(v) for v in entry) for entry in accountant["history"]]
        state: dict[str, Any] = {"accountant": accountant, "noise_multiplier": self.noise_multiplier}
        if self.sampler_generator is not None:
            state["sampler_rng"] = self.sampler_generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: same σ, the accountant's history so far, the sampler where it was."""
        mechanism = state["accountant"].get("mechanism")
        if mechanism != self.settings.accountant:
            raise TwinIDSError(
                f"the checkpoint was trained with privacy.accountant={mechanism}; resume with the same accountant"
            )
        self.noise_multiplier = float(state["noise_multiplier"])
        history = [(float(s), float(q), int(n)) for s, q, n in state["accountant"]["history"]]
        accountant = {"history": history, "mechanism": mechanism}
        if self.sampler_generator is not None and "sampler_rng" in state:
            self.sampler_generator.set_state(state["sampler_rng"])
        if self.private is None:
            self._pending_state = {"accountant": accountant}
        else:
            self.private.engine.accountant.load_state_dict(accountant)


class _Unsized:
    """A loader without `len`: Lightning then ends the epoch when the loader is exhausted.

    Opacus's physical-batch splitting yields a random number of physical batches per epoch, while its
    `len` is an estimate; with a length, Lightning could end an epoch inside a logical (noisy) step.
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)
