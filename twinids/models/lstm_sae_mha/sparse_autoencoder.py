"""Sparse autoencoder over per-step states, with its reconstruction and sparsity terms computed per window.

Every term reduces over a window's own time steps and units only, never over the batch: a batch mean would
mix windows, so one window's gradient would depend on the others and per-sample clipping (DP) would break.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from twinids.errors import TwinIDSError

SPARSITY_KINDS = ("kl", "l1")
_RATE_EPS = 1e-6  # keeps log() finite when a saturated sigmoid puts a mean activation at exactly 0 or 1


class AutoencoderOutput(NamedTuple):
    """What the sparse autoencoder returns for ``(batch, time, width)`` states.

    Attributes:
        codes: sigmoid code activations ``(batch, time, code_size)``.
        reconstruction: mean squared error between decoded and input states per window ``(batch,)``.
        sparsity: the sparsity penalty per window ``(batch,)``.
    """

    codes: Tensor
    reconstruction: Tensor
    sparsity: Tensor


class SparseAutoencoder(nn.Module):
    """Encoder ``Linear -> sigmoid`` to ``code_size`` codes, decoder ``Linear`` back to the state width.

    Args:
        width: features per time step of the states to encode.
        code_size: code units.
        sparsity: ``"kl"`` (KL divergence of the target rate from each unit's mean activation) or ``"l1"``
            (mean absolute code).
        sparsity_target: target activation rate ρ of a code unit, in (0, 1); used by ``"kl"``.

    Raises:
        TwinIDSError: for an unknown ``sparsity`` or a ``sparsity_target`` outside (0, 1).
    """

    def __init__(self, width: int, code_size: int, sparsity: str, sparsity_target: float) -> None:
        super().__init__()
        if sparsity not in SPARSITY_KINDS:
            raise TwinIDSError(
                f"sparsity must be one of {list(SPARSITY_KINDS)}, got {sparsity!r}: 'kl' pulls each code unit's "
                "mean activation over a window towards sparsity_target, 'l1' penalises the mean absolute code."
            )
        if not 0.0 < sparsity_target < 1.0:
            raise TwinIDSError(
                f"sparsity_target must be an activation rate strictly between 0 and 1, got {sparsity_target}."
            )
        self.sparsity = sparsity
        self.sparsity_target = float(sparsity_target)
        self.encoder = nn.Linear(width, code_size)
        self.decoder = nn.Linear(code_size, width)

    def forward(self, states: Tensor) -> AutoencoderOutput:
        """Encode and decode ``states`` ``(batch, time, width)``; see :class:`AutoencoderOutput`."""
        codes = torch.sigmoid(self.encoder(states))
        decoded = self.decoder(codes)
        if self.sparsity == "kl":
            penalty = kl_sparsity(codes, self.sparsity_target)
        else:
            penalty = l1_sparsity(codes)
        return AutoencoderOutput(codes, reconstruction_error(states, decoded), penalty)


def reconstruction_error(states: Tensor, decoded: Tensor) -> Tensor:
    """Mean squared error per window, averaged over time steps and units.

    Args:
        states: the encoded states ``(batch, time, width)``.
        decoded: their reconstruction, same shape.

    Returns:
        ``(batch,)``.
    """
    return (decoded - states).square().mean(dim=(1, 2))


def kl_sparsity(codes: Tensor, target: float) -> Tensor:
    """KL divergence of Bernoulli(ρ) from Bernoulli(ρ̂) summed over code units, per window.

    ρ̂ of a unit is its mean activation over the window's own time steps. Summing over units is the KL
    divergence between the two products of independent Bernoullis (the textbook sparse-autoencoder term);
    it is 0 exactly when every unit's ρ̂ equals ρ.

    Args:
        codes: sigmoid activations ``(batch, time, code_size)`` in (0, 1).
        target: the target rate ρ in (0, 1).

    Returns:
        ``(batch,)``, non-negative.
    """
    rate = codes.mean(dim=1).clamp(_RATE_EPS, 1.0 - _RATE_EPS)  # (batch, code_size)
    kl = target * torch.log(target / rate) + (1.0 - target) * torch.log((1.0 - target) / (1.0 - rate))
    return kl.sum(dim=1)


def l1_sparsity(codes: Tensor) -> Tensor:
    """Mean absolute code per window, averaged over time steps and units.

    Args:
        codes: activations ``(batch, time, code_size)``.

    Returns:
        ``(batch,)``.
    """
    return codes.abs().mean(dim=(1, 2))
