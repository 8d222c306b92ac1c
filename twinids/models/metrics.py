"""Detection metrics of one stage from an attack score and a predicted class per window.

Every detector, whether it outputs class probabilities or only an anomaly score, reports through these,
so metric names and definitions are the same everywhere: `<stage>/accuracy`, `<stage>/f1_macro`,
`<stage>/precision_macro`, `<stage>/recall_macro`, `<stage>/auroc` (attack score vs attack-or-normal),
`<stage>/auprc` (average precision of the attack score), `<stage>/fpr` (share of normal windows flagged),
`<stage>/auroc_ovr_macro` (multiclass, when class probabilities exist) and `<stage>/recall_attack/<type>`
(share of each attack type's windows flagged).

Episode metrics read the windows as a stream (time order within each group, a group being one device's
run): an episode is a maximal run of attack windows of one group, and a window alarms when its predicted
class is not normal. `<stage>/episodes_total`, `<stage>/episodes_detected` (at least one alarm inside),
`<stage>/time_to_detection_mean` (windows from an episode's first window to its first alarm, over the
detected episodes; steps when `data.stride=1`) and the BATADAL competition score (Taormina et al. 2018,
see `twinids.scoring.episodes`): `<stage>/batadal_s` = (S_TTD + S_CM) / 2 with its parts
`<stage>/batadal_s_ttd` and `<stage>/batadal_s_cm`. Without groups the windows are one stream.

A metric that is undefined on the data at hand (AUROC with one class present, FPR without normal
windows, S_TTD without episodes, time to detection without a detected episode) is left out, never
reported as 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)
from torchmetrics.utilities import dim_zero_cat

from twinids.models.metric_names import RECALL_PER_ATTACK
from twinids.scoring import batadal_score


class DetectionMetrics(Metric):
    """Accumulates per-window scores, predictions, targets and attack types of one stage; computes every metric.

    Args:
        class_names: the classes, normal first (index 0).
        attack_names: attack types, normal first; windows carry an index into them. Empty: no per-attack recall.
        prefix: the stage, e.g. "val" or "test".
    """

    full_state_update = False

    def __init__(self, class_names: list[str], attack_names: list[str] | tuple[str, ...] = (), prefix: str = "test"):
        super().__init__()
        self.class_names = list(class_names)
        self.attack_names = list(attack_names)
        self.prefix = prefix
        for name in ("scores", "predicted", "targets", "attacks", "groups", "probabilities"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        scores: torch.Tensor,
        predicted: torch.Tensor,
        targets: torch.Tensor,
        attacks: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> None:
        """Add one batch in time order: attack scores (higher = more likely an attack), predicted classes, true
        classes, attack type indices, class probabilities (batch, classes) where the detector has them, and
        each window's group (its run of one device)."""
        self.scores.append(scores.detach().float().flatten())
        self.predicted.append(predicted.detach().long().flatten())
        self.targets.append(targets.detach().long().flatten())
        if attacks is not None:
            self.attacks.append(attacks.detach().long().flatten())
        if groups is not None:
            self.groups.append(groups.detach().long().flatten())
        if probabilities is not None:
            self.probabilities.append(probabilities.detach().float())

    def compute(self) -> dict[str, torch.Tensor]:
        """Every metric defined on the accumulated windows, named `<prefix>/<metric>`."""
        if not self.targets:
            return {}
        scores, predicted, targets = (dim_zero_cat(s) for s in (self.scores, self.predicted, self.targets))
        n_classes = len(self.class_names)
        values = {
            "accuracy": multiclass_accuracy(predicted, targets, n_classes, average="micro"),
            "f1_macro": multiclass_f1_score(predicted, targets, n_classes, average="macro"),
            "precision_macro": multiclass_precision(predicted, targets, n_classes, average="macro"),
            "recall_macro": multiclass_recall(predicted, targets, n_classes, average="macro"),
        }
        is_attack = targets != 0
        if is_attack.any() and (~is_attack).any():
            values["auroc"] = binary_auroc(scores, is_attack.long())
            values["auprc"] = binary_average_precision(scores, is_attack.long())
        if (~is_attack).any():
            values["fpr"] = (predicted[~is_attack] != 0).float().mean()
        if n_classes > 2 and self.probabilities and len(torch.unique(targets)) == n_classes:
            values["auroc_ovr_macro"] = multiclass_auroc(dim_zero_cat(self.probabilities), targets, n_classes)
        if self.attacks and self.attack_names:
            attacks = dim_zero_cat(self.attacks)
            for code, name in enumerate(self.attack_names[1:], start=1):
                of_type = attacks == code
                if of_type.any():
                    values[f"{RECALL_PER_ATTACK}/{name}"] = (predicted[of_type] != 0).float().mean()
        groups = dim_zero_cat(self.groups).numpy() if self.groups else None
        values.update(episode_metrics(is_attack.numpy(), (predicted != 0).numpy(), groups))
        return {f"{self.prefix}/{name}": value for name, value in values.items()}

    def confusion(self) -> torch.Tensor:
        """Counts of (true class, predicted class) over the accumulated windows."""
        n_classes = len(self.class_names)
        if not self.targets:
            return torch.zeros(n_classes, n_classes, dtype=torch.long)
        return multiclass_confusion_matrix(dim_zero_cat(self.predicted), dim_zero_cat(self.targets), n_classes)


def episode_metrics(attack: np.ndarray, alarm: np.ndarray, groups: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Episode counts, mean time to detection and the BATADAL score of per-window alarms; undefined ones absent.

    Args:
        attack: whether each window is an attack window, in time order within each group.
        alarm: whether each window raised an alarm.
        groups: each window's group (one device's run), or None for one stream.
    """
    score = batadal_score(attack, alarm, groups)
    detected = [e.time_to_detection for e in score.episodes if e.time_to_detection is not None]
    values = {"episodes_total": score.episodes_total, "episodes_detected": score.episodes_detected}
    if detected:
        values["time_to_detection_mean"] = float(np.mean(detected))
    for name, value in (("batadal_s", score.score), ("batadal_s_ttd", score.s_ttd), ("batadal_s_cm", score.s_cm)):
        if not math.isnan(value):
            values[name] = value
    return {name: torch.tensor(float(value)) for name, value in values.items()}
