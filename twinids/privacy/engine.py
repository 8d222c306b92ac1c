"""Make a detector's training private with Opacus, refusing settings under which the DP guarantee is void.

All accounting, sampling, clipping and noise are Opacus's own (``PrivacyEngine``); this module only picks
the mode, swaps ``nn.LSTM`` for PrivateLSTM and turns unsafe or unknown settings into teaching errors.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch
from opacus import PrivacyEngine
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
            None uses torch's global one, or Opacus's cryptographic RNG in secure mode (which then
            swaps it into the loader itself).

    Returns:
        PrivateTraining(module, optimizer, data_loader, engine, criterion).

    Raises:
        TwinIDSError: for a setting that voids the DP guarantee or that twinids does not know.
    """
    _refuse_unsafe(noise_multiplier, max_grad_norm, clipping, poisson_sampling, allow_uniform_batches, accountant)
    if loss_reduction not in ("mean", "sum"):
        raise TwinIDSError(f"privacy.loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}.")
    if secure_mode and sampler_generator is not None:
        raise TwinIDSError(
            "privacy.secure_mode=true draws Poisson samples from Opacus's cryptographic RNG, so a seeded "
            "sampler_generator cannot be used with it (a predictable sampler would void the secure guarantee); "
            "pass sampler_generator=None in secure mode."
        )
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
        # In secure mode Opacus swaps its cryptographic RNG into this loader's sampler (poisson_sampling=False
        # below: it keeps our sampler and only switches its generator).
        data_loader = poisson_loader(data_loader, sampler_generator)
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
    _link_private_lstms(module, private_module, loss_reduction)
    return PrivateTraining(private_module, private_optimizer, private_loader, engine, private_criterion)


def poisson_loader(data_loader: DataLoader, generator: torch.Generator | None = None) -> DataLoader:
    """Opacus's Poisson-sampled version of a loader: each window joins each batch with probability 1/len(loader).

    Unlike ``DPDataLoader.from_data_loader``, the epoch has exactly ``len(data_loader)`` steps (that one
    computes ``int(1 / (1 / k))``, which float rounding makes k - 1 for some k), so the sample rate the
    engine hands the accountant, 1/len(loader), is the one the sampler uses. The sampler is Opacus's public
    ``UniformWithReplacementSampler``; an empty draw collates to tensors with zero rows (see ``CollateWithEmpty``).
    """
    steps = len(data_loader)
    dataset = data_loader.dataset
    sampler = UniformWithReplacementSampler(
        num_samples=len(dataset), sample_rate=1 / steps, generator=generator, steps=steps
    )
    # Fetched as DataLoader fetches a batch: through the dataset's batched __getitems__ where it has one.
    getitems = getattr(dataset, "__getitems__", None)
    one_window = data_loader.collate_fn(getitems([0]) if getitems else [dataset[0]])
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=CollateWithEmpty(data_loader.collate_fn, one_window),
        num_workers=data_loader.num_workers,
        pin_memory=data_loader.pin_memory,
    )


class CollateWithEmpty:
    """A loader's collate function that also collates an empty Poisson draw, to the same structure with 0 rows.

    Poisson sampling may draw no window; most collate functions fail on an empty list, while every layer
    and loss of twinids handles a batch of zero rows (the DP step then adds only noise, as accounted).
    The empty batch is a collated one-window batch with every tensor sliced to zero rows, so its structure,
    dtypes and trailing shapes are those of any other batch. A module-level class, so worker processes
    can unpickle it.

    Args:
        collate_fn: the loader's collate function.
        one_window_batch: a batch of one window as the loader collates it, the template of the empty batch.

    Raises:
        TwinIDSError: when the batch holds something other than tensors (in lists, tuples or dicts).
    """

    def __init__(self, collate_fn: Callable[[Any], Any], one_window_batch: Any) -> None:
        self.collate_fn = collate_fn
        self.empty_batch = _zero_rows(one_window_batch)

    def __call__(self, batch: Any) -> Any:
        """The collated batch, or the zero-row batch for an empty draw (DataLoader fetches it as ``[]``)."""
        return self.empty_batch if isinstance(batch, list) and not batch else self.collate_fn(batch)


def _zero_rows(batch: Any) -> Any:
    """``batch`` with every tensor cut to its first zero rows, keeping lists, tuples and dicts as they are."""
    if isinstance(batch, torch.Tensor):
        return batch[:0]
    if isinstance(batch, dict):
        return {key: _zero_rows(value) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(_zero_rows(value) for value in batch)
    raise TwinIDSError(
        f"Poisson sampling can draw an empty batch, and a collated batch holding {type(batch).__name__} has no "
        "empty form; make the dataset return tensors (or lists, tuples, dicts of tensors)."
    )


def _link_private_lstms(module: nn.Module, hooks: GradSampleHooks, loss_reduction: str) -> None:
    """Tell every PrivateLSTM how Opacus treats its gradients: what it discards, and the loss reduction.

    While the hooks are enabled, the DP optimizer replaces ``p.grad`` by the noisy sum of clipped
    per-sample gradients (per-sample mode) or zeroes it after the norm pass (ghost clipping); the
    gradients ghost clipping keeps come from its second pass, run with the hooks disabled. Skipping the
    discarded ones saves two matrix products per layer-direction in each first pass. Opacus publishes
    ``enable_hooks``/``disable_hooks`` but no getter, so this reads its ``hooks_enabled`` attribute
    (tests/privacy/test_private_dependencies.py names it).
    """
    hooks_ref = weakref.ref(hooks)

    def discarded() -> bool:
        current = hooks_ref()
        return current is not None and current.hooks_enabled

    for layer in module.modules():
        if isinstance(layer, PrivateLSTM):
            layer.param_grads_discarded = discarded
            layer.loss_reduction = loss_reduction


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
