"""Detection metrics from torchmetrics, named the same everywhere: `<stage>/accuracy`, `<stage>/f1_macro`, ..."""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

METRIC_NAMES = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "auroc", "fpr", "auroc_ovr_macro")


class AttackScoreAUROC(BinaryAUROC):
    """AUROC of the attack score (1 - P(normal)) against attack-vs-normal targets, for any number of classes."""

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(1.0 - probabilities[:, 0], (target != 0).long())


class FalsePositiveRate(Metric):
    """Share of normal windows (class 0) flagged as any attack: the false-alarm rate operators feel."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("false_alarms", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("normals", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, target: torch.Tensor) -> None:
        """Count normal windows and those predicted as an attack class."""
        normal = target == 0
        self.normals += normal.sum()
        self.false_alarms += (probabilities.argmax(dim=1)[normal] != 0).sum()

    def compute(self) -> torch.Tensor:
        """False alarms over normal windows (0 when there are no normal windows)."""
        return self.false_alarms.float() / self.normals.clamp(min=1).float()


def detection_metrics(n_classes: int, prefix: str) -> MetricCollection:
    """The metric set logged for one stage; inputs are class probabilities (batch, n_classes) and targets.

    `auroc` always scores attack vs normal (so binary and multiclass runs compare); multiclass runs add
    the one-vs-rest macro AUROC over classes as `auroc_ovr_macro`.
    """
    metrics: dict[str, Metric] = {
        "accuracy": MulticlassAccuracy(n_classes, average="micro"),
        "f1_macro": MulticlassF1Score(n_classes, average="macro"),
        "precision_macro": MulticlassPrecision(n_classes, average="macro"),
        "recall_macro": MulticlassRecall(n_classes, average="macro"),
        "auroc": AttackScoreAUROC(),
        "fpr": FalsePositiveRate(),
    }
    if n_classes > 2:
        metrics["auroc_ovr_macro"] = MulticlassAUROC(n_classes, average="macro")
    return MetricCollection(metrics, prefix=f"{prefix}/")


def confusion_matrix(n_classes: int) -> MulticlassConfusionMatrix:
    """Counts of (true class, predicted class), for the confusion-matrix plot."""
    return MulticlassConfusionMatrix(n_classes)
