"""Supervised window classifiers: cross-entropy plus the net's weighted auxiliary losses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from twinids.errors import TwinIDSError
from twinids.models.detector_module import DetectorModule, WindowScores

CLASS_WEIGHTINGS = ("none", "balanced")


def split_output(output: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A net returns its output, or (output, {term: per-window auxiliary loss}); give both parts."""
    if isinstance(output, tuple):
        main, auxiliary = output
        return main, dict(auxiliary)
    return output, {}


class ClassifierLoss(nn.Module):
    """Cross-entropy on logits plus weighted auxiliary per-window losses.

    `reduction` works as in torch losses: "none" gives one total per window (what DP-SGD clips), "mean" the
    batch mean of those totals. Class weights scale each window's cross-entropy; unlike
    `nn.CrossEntropyLoss`, the mean is not divided by the batch's summed weights, which would make one
    window's gradient depend on the other windows' labels and void per-sample clipping under DP-SGD.

    Args:
        class_weights: per-class weights of the cross-entropy, or None.
        auxiliary_weights: weight of each auxiliary term the net returns; a term without a weight is refused.
        reduction: "mean", "sum" or "none".
    """

    def __init__(
        self,
        class_weights: torch.Tensor | None = None,
        auxiliary_weights: Mapping[str, float] | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights)
        self.auxiliary_weights = dict(auxiliary_weights or {})
        self.reduction = reduction

    def terms(self, output: Any, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-window loss terms: `classification`, each auxiliary term (unweighted) and the weighted `total`."""
        logits, auxiliary = split_output(output)
        unknown = sorted(set(auxiliary) - set(self.auxiliary_weights))
        if unknown:
            raise TwinIDSError(
                f"the net returns auxiliary losses {unknown} with no weight; set model.module.loss_weights."
                f"<term> (known: {sorted(self.auxiliary_weights) or 'none'})"
            )
        terms = {"classification": F.cross_entropy(logits, targets, weight=self.class_weights, reduction="none")}
        total = terms["classification"]
        for name, values in auxiliary.items():
            terms[name] = values
            total = total + self.auxiliary_weights[name] * values
        terms["total"] = total
        return terms

    def forward(self, output: Any, targets: torch.Tensor) -> torch.Tensor:
        """The loss, reduced as `self.reduction` says."""
        total = self.terms(output, targets)["total"]
        if self.reduction == "none":
            return total
        return total.sum() if self.reduction == "sum" else total.mean()


class ClassifierModule(DetectorModule):
    """Trains a window classifier (logits per class); the attack score is 1 − P(normal).

    Args:
        net: windows -> logits (batch, classes), or (logits, {term: per-window auxiliary loss}).
        optimizer: a partial taking the trainable parameters.
        class_names: the classes, normal first.
        attack_names: attack types, normal first.
        train_class_counts: windows per class in the training split (for balanced class weights).
        class_weights: "none" or "balanced" (inverse class frequency of the training windows).
        loss_weights: weight of each auxiliary loss term the net returns.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        attack_names: list[str] | tuple[str, ...] = (),
        train_class_counts: list[int] | None = None,
        class_weights: str = "none",
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(net, optimizer, class_names, attack_names)
        if class_weights not in CLASS_WEIGHTINGS:
            raise TwinIDSError(
                f"unknown model.module.class_weights '{class_weights}'; valid: {', '.join(CLASS_WEIGHTINGS)}"
            )
        weights = None
        if class_weights == "balanced":
            counts = np.maximum(np.asarray(train_class_counts or [1] * len(class_names)), 1).astype(np.float64)
            weights = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
        self.criterion = ClassifierLoss(weights, loss_weights)

    @property
    def loss(self) -> nn.Module:
        """Cross-entropy plus weighted auxiliary terms."""
        return self.criterion

    def loss_terms(self, output: Any, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of each per-window term, `total` among them."""
        return {name: values.mean() for name, values in self.criterion.terms(output, targets).items()}

    def window_losses(self, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each window's weighted total loss (cross-entropy plus auxiliary terms), as training minimised it."""
        return self.criterion.terms(self.net(windows), targets)["total"]

    def alarm_score(self, windows: torch.Tensor) -> torch.Tensor:
        """The likeliest attack class's logit minus the normal logit: above 0 exactly when an attack is predicted."""
        logits, _ = split_output(self.net(windows))
        return (logits[:, 1:].max(dim=1).values - logits[:, 0]).to(torch.float64)

    def alarm_rule(self) -> tuple[int, float]:
        """No smoothing; an alarm when the margin is above 0."""
        return 1, 0.0

    def scores(self, output: Any) -> WindowScores:
        """Softmax probabilities; score 1 − P(normal); the most probable class."""
        logits, _ = split_output(output)
        probabilities = logits.softmax(dim=1)
        return WindowScores(1.0 - probabilities[:, 0], probabilities.argmax(dim=1), probabilities)
