"""Make a detector's training private with Opacus, refusing settings under which the DP guarantee is void.

All accounting, sampling, clipping and noise are Opacus's own (``PrivacyEngine``); this module only picks
the mode, swaps ``nn.LSTM`` for PrivateLSTM and turns unsafe or unknown settings into teaching errors.
"""

from __future__ import annotations

import math
import weakref
from typing import Literal, NamedTuple

import torch
from opacus import PrivacyEngine
from opacus.data_loader import dtype_safe, shape_safe, wrap_collate_with_empty
from opacus.grad_sample import GradSampleHooks
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn, optim
from torch.utils.data import DataLoader

from twinids.errors import TwinIDSError
from twinids.privacy.lstm import PrivateLSTM, to_private_lstm

Clipping = Literal["ghost", "per_sample"]
ACCOUNTANTS = ("rdp", "prv")
CLIPPING_MODES: dict[str, str] = {"ghost": "ghost", "per_sample": "hooks"}


class PrivateTraining(NamedTuple):
    """What training needs after ``make_private``: use these objects, and only these, in the loop.

    Attributes:
        module: the model wrapped by Opacus (computes per-sample gradients or their norms).
        optimizer: Opacus's DP optimizer (clips, adds noise, steps the accountant).
        data_loader: the loader with Poisson sampling (unless explicitly opted out).
        engine: the PrivacyEngine; ``engine.get_epsilon(delta)`` is the privacy spent so far.
        criterion: the loss to call. With ``clipping="ghost"`` it is Opacus's wrapper whose
            ``loss.backward()`` runs the two passes that clip; a plain loss there would skip clipping.
    """

    module: nn.Module
    optimizer: optim.Optimizer
    data_loader: DataLoader
    engine: PrivacyEngine
    criterion: nn.Module | object | None


def make_private(
    module: nn.Module,
    optimizer: optim.Optimizer,
    data_loader: DataLoader,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    clipping: Clipping = "ghost",
    poisson_sampling: bool = True,
    allow_uniform_batches: bool = False,
    accountant: str = "rdp",
    criterion: nn.Module | None = None,
    loss_reduction: Literal["mean", "sum"] = "mean",
    secure_mode: bool = False,
    wrap_model: bool = True,
    sampler_generator: torch.Generator | None = None,
) -> PrivateTraining:
    """Wrap model, optimizer and loader with Opacus's PrivacyEngine for DP-SGD.

    Every ``nn.LSTM`` in ``module`` is first replaced by a PrivateLSTM sharing its parameters (so
    ``optimizer`` stays valid); its per-sample gradients (``"per_sample"``) or per-sample gradient norms
    (``"ghost"``, two backward passes, no per-sample gradient tensors) are computed for all time steps at
    once.

    Args:
        module: the detector (a pure ``nn.Module``), in training mode.
        optimizer: an optimizer over ``module``'s parameters.
        data_loader: the training loader; its batch size sets the expected batch (sampling rate).
        noise_multiplier: noise std / max_grad_norm; must be > 0.
        max_grad_norm: per-sample clipping bound C; must be > 0.
        clipping: ``"ghost"`` (fast, default) or ``"per_sample"`` (materialised per-sample gradients).
        poisson_sampling: sample each batch by Poisson sampling, as the accountant assumes.
        allow_uniform_batches: explicit opt-in to ``poisson_sampling=False`` (epsilon then is only an
            approximation).
        accountant: ``"rdp"`` or ``"prv"``.
        criterion: the loss module (needed for ``"ghost"``; must have a ``reduction`` attribute).
        loss_reduction: how the loss reduces over the batch, ``"mean"`` or ``"sum"``.
        secure_mode: Opacus's cryptographically safe noise (slower; use for released models).
        wrap_model: wrap the module in a GradSampleModule (True) or only hook its layers (False: the module
            keeps its type and state-dict keys, as a LightningModule's net must).
        sampler_generator: the RNG of Poisson sampling (so a resumed run can continue its sequence);
            None uses Opacus's (the secure RNG in secure mode, else torch's global one).

    Returns:
        PrivateTraining(module, optimizer, data_loader, engine, criterion).

    Raises:
        TwinIDSError: for a setting that voids the DP guarantee or that twinids does not know.
    """
    _refuse_unsafe(noise_multiplier, max_grad_norm, clipping, poisson_sampling, allow_uniform_batches, accountant)
    if loss_reduction not in ("mean", "sum"):
        raise TwinIDSError(f"privacy.loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}.")
    if clipping == "ghost" and criterion is None:
        raise TwinIDSError(
            "privacy.clipping='ghost' needs the loss module (criterion=...): ghost clipping clips inside "
            "loss.backward() (two passes), so the loss must come from the wrapper make_private returns."
        )
    reduction = getattr(criterion, "reduction", loss_reduction)
    if clipping == "ghost" and reduction != loss_reduction:
        raise TwinIDSError(
            f"privacy.loss_reduction is {loss_reduction!r} but the loss module reduces with {reduction!r}; "
            "ghost clipping scales per-sample losses by the reduction, so both must agree."
        )
    module = to_private_lstm(module)
    problems = ModuleValidator.validate(module, strict=False)
    if problems:
        raise TwinIDSError(
            "the model has layers DP-SGD cannot train privately: "
            + "; ".join(str(p) for p in problems)
            + ". Per-sample gradients need layers whose samples do not mix (use GroupNorm or LayerNorm "
            "instead of BatchNorm), see opacus.validators.ModuleValidator.fix."
        )
    engine = PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
    if poisson_sampling:
        data_loader = poisson_loader(data_loader, sampler_generator or engine.secure_rng)
    result = engine.make_private(
        module=module,
        optimizer=optimizer,
        data_loader=data_loader,
        criterion=criterion if criterion is not None else nn.CrossEntropyLoss(),
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        batch_first=True,
        loss_reduction=loss_reduction,
        poisson_sampling=False,  # the loader above already samples; the engine then keeps it as it is
        grad_sample_mode=CLIPPING_MODES[clipping],
        wrap_model=wrap_model,
    )
    if clipping == "ghost":
        private_module, private_optimizer, private_criterion, private_loader = result
    else:
        private_module, private_optimizer, private_loader = result
        private_criterion = criterion
    if poisson_sampling:
        private_module.forbid_grad_accumulation()
    _skip_discarded_lstm_param_grads(module, private_module)
    return PrivateTraining(private_module, private_optimizer, private_loader, engine, private_criterion)


def poisson_loader(data_loader: DataLoader, generator: torch.Generator | None = None) -> DataLoader:
    """Opacus's Poisson-sampled version of a loader: each window joins each batch with probability 1/len(loader).

    Unlike ``DPDataLoader.from_data_loader``, the epoch has exactly ``len(data_loader)`` steps (that one
    computes ``int(1 / (1 / k))``, which float rounding makes k - 1 for some k), so the sample rate the
    engine hands the accountant, 1/len(loader), is the one the sampler uses.
    """
    steps = len(data_loader)
    dataset = data_loader.dataset
    sample = dataset[0]
    sampler = UniformWithReplacementSampler(
        num_samples=len(dataset), sample_rate=1 / steps, generator=generator, steps=steps
    )
    collate = wrap_collate_with_empty(
        collate_fn=data_loader.collate_fn,
        sample_empty_shapes=[(0, *shape_safe(x)) for x in sample],
        dtypes=[dtype_safe(x) for x in sample],
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=data_loader.num_workers,
        pin_memory=data_loader.pin_memory,
    )


def _skip_discarded_lstm_param_grads(module: nn.Module, hooks: GradSampleHooks) -> None:
    """Let every PrivateLSTM skip parameter gradients that Opacus's DP optimizer throws away.

    While the hooks are enabled, the DP optimizer replaces ``p.grad`` by the noisy sum of clipped
    per-sample gradients (per-sample mode) or zeroes it after the norm pass (ghost clipping); the
    gradients ghost clipping keeps come from its second pass, run with the hooks disabled.
    """
    hooks_ref = weakref.ref(hooks)

    def discarded() -> bool:
        current = hooks_ref()
        return current is not None and current.hooks_enabled

    for layer in module.modules():
        if isinstance(layer, PrivateLSTM):
            layer.param_grads_discarded = discarded


def _refuse_unsafe(
    noise_multiplier: float,
    max_grad_norm: float,
    clipping: str,
    poisson_sampling: bool,
    allow_uniform_batches: bool,
    accountant: str,
) -> None:
    """Raise a TwinIDSError that says why DP forbids the setting and what to use instead."""
    if not _positive_finite(noise_multiplier):
        raise TwinIDSError(
            f"privacy.noise_multiplier must be a finite number > 0, got {noise_multiplier!r}: without "
            "Gaussian noise the clipped gradients reveal individual windows and epsilon is infinite. "
            "Use e.g. 1.0 (more noise, smaller epsilon), or train without privacy on purpose."
        )
    if not _positive_finite(max_grad_norm):
        raise TwinIDSError(
            f"privacy.max_grad_norm must be a finite number > 0, got {max_grad_norm!r}: it bounds each "
            "window's influence (the sensitivity the noise is scaled to). Use e.g. 1.0."
        )
    if clipping not in CLIPPING_MODES:
        raise TwinIDSError(
            f"privacy.clipping must be one of {sorted(CLIPPING_MODES)}, got {clipping!r}. "
            "'ghost' computes per-sample gradient norms only (fast, two backward passes); "
            "'per_sample' materialises per-sample gradients."
        )
    if accountant not in ACCOUNTANTS:
        raise TwinIDSError(
            f"privacy.accountant must be one of {list(ACCOUNTANTS)}, got {accountant!r}: both give an upper "
            "bound on epsilon ('prv' is tighter); 'gdp' is an asymptotic approximation and not offered."
        )
    if not poisson_sampling and not allow_uniform_batches:
        raise TwinIDSError(
            "privacy.poisson_sampling=false voids the DP guarantee: the accountant's epsilon assumes every "
            "window joins each batch independently with probability batch_size/N (Poisson sampling); "
            "shuffled fixed-size batches only approximate it. Keep poisson_sampling=true, or set "
            "privacy.allow_uniform_batches=true to accept an approximate epsilon knowingly."
        )


def _positive_finite(value: object) -> bool:
    """Whether ``value`` is a real number, finite and > 0 (bools are not numbers here)."""
    if isinstance(value, bool):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0
