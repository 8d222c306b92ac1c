"""Per-window losses of the one-class detectors: what a net that learns normal windows is trained to minimise.

Each loss is computed per window (`per_window`), as DP-SGD needs (it clips each window's gradient), and reduced
only when asked. The target is always the window itself: no label reaches these losses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from twinids.errors import TwinIDSError


class PredictionLoss(nn.Module):
    """Mean squared error per window of a net's prediction of the window's last k steps.

    Args:
        reduction: "mean", "sum" or "none" (one value per window: what DP-SGD clips).
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def per_window(self, output: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Mean squared residual of each window, shape (batch,)."""
        return prediction_residuals(output, windows).square().mean(dim=(1, 2))

    def forward(self, output: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """The loss, reduced as `self.reduction` says."""
        return _reduced(self.per_window(output, windows), self.reduction)


def prediction_residuals(output: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Readings minus predictions of the window's last k steps, k = the output's length in time."""
    if output.dim() != 3 or output.shape[0] != windows.shape[0] or output.shape[2] != windows.shape[2]:
        raise TwinIDSError(
            f"a prediction net must output (batch, steps, features) like its windows {tuple(windows.shape)}; got "
            f"{tuple(output.shape)}: use model.module._target_=twinids.models.one_class.PredictionModule only with "
            "forecasters and autoencoders"
        )
    return windows[:, windows.shape[1] - output.shape[1] :] - output


class ErrorTermLoss(nn.Module):
    """Weighted sum of the per-window error terms a net returns beside its output, `(output, {term: (batch,)})`.

    Args:
        weights: weight of each term; a term the net returns without a weight is refused.
        reduction: "mean", "sum" or "none".
    """

    def __init__(self, weights: Mapping[str, float], reduction: str = "mean") -> None:
        super().__init__()
        self.weights = dict(weights)
        self.reduction = reduction

    def terms(self, output: Any) -> dict[str, torch.Tensor]:
        """Each error term per window and their weighted `total`."""
        terms = error_terms(output)
        unknown = sorted(set(terms) - set(self.weights))
        if unknown:
            raise TwinIDSError(f"the net returns error terms {unknown} with no weight; set model.module.loss_weights")
        total = sum(self.weights[name] * values for name, values in terms.items())
        return {**terms, "total": total}

    def per_window(self, output: Any, windows: torch.Tensor) -> torch.Tensor:
        """The weighted total of each window, shape (batch,)."""
        return self.terms(output)["total"]

    def forward(self, output: Any, windows: torch.Tensor) -> torch.Tensor:
        """The loss, reduced as `self.reduction` says."""
        return _reduced(self.per_window(output, windows), self.reduction)


def error_terms(output: Any) -> dict[str, torch.Tensor]:
    """The `{term: (batch,)}` part of a net output `(main, terms)`."""
    if not (isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], Mapping)):
        raise TwinIDSError(
            "ErrorTermModule needs a net returning (output, {term: per-window error}), such as the hybrid "
            "lstm_sae_mha; for forecasters and autoencoders use twinids.models.one_class.PredictionModule"
        )
    return dict(output[1])


def _reduced(per_window: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_window
    return per_window.sum() if reduction == "sum" else per_window.mean()
