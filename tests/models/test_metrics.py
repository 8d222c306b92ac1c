"""Detection metrics from an attack score and a predicted class per window agree with scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from twinids.models.metrics import DetectionMetrics


def computed(metrics: DetectionMetrics) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.compute().items()}


def test_binary_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, 500)
    p_attack = np.clip(target * 0.3 + rng.random(500) * 0.7, 0, 1)
    predicted = (p_attack > 0.5).astype(int)
    metrics = DetectionMetrics(["normal", "attack"], prefix="test")
    metrics.update(torch.tensor(p_attack), torch.tensor(predicted), torch.tensor(target))
    values = computed(metrics)
    normal = target == 0
    assert np.isclose(values["test/accuracy"], accuracy_score(target, predicted))
    assert np.isclose(values["test/f1_macro"], f1_score(target, predicted, average="macro"))
    assert np.isclose(values["test/precision_macro"], precision_score(target, predicted, average="macro"))
    assert np.isclose(values["test/recall_macro"], recall_score(target, predicted, average="macro"))
    assert np.isclose(values["test/auroc"], roc_auc_score(target, p_attack), atol=1e-4)
    assert np.isclose(values["test/fpr"], predicted[normal].mean())


def test_false_positive_rate_counts_normal_windows_flagged_as_any_attack_class():
    metrics = DetectionMetrics(["normal", "dos", "replay"], prefix="val")
    metrics.update(torch.tensor([0.1, 0.9, 0.8, 0.9]), torch.tensor([0, 2, 1, 1]), torch.tensor([0, 0, 0, 1]))
    assert computed(metrics)["val/fpr"] == pytest.approx(2 / 3)


def test_multiclass_auroc_scores_attack_versus_normal_and_ovr_macro_is_logged_beside_it():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 2.0 * np.eye(3)[target]
    probabilities = torch.softmax(torch.tensor(logits, dtype=torch.float32), dim=1)
    metrics = DetectionMetrics(["normal", "dos", "replay"])
    metrics.update(1 - probabilities[:, 0], probabilities.argmax(dim=1), torch.tensor(target), None, probabilities)
    values = computed(metrics)
    attack_score = 1 - probabilities[:, 0].numpy()
    assert np.isclose(values["test/auroc"], roc_auc_score(target != 0, attack_score), atol=1e-4)
    ovr = roc_auc_score(target, probabilities.numpy(), multi_class="ovr", average="macro")
    assert np.isclose(values["test/auroc_ovr_macro"], ovr, atol=1e-4)


def test_a_score_only_detector_gets_the_same_metrics_without_probabilities():
    metrics = DetectionMetrics(["normal", "attack"])
    metrics.update(torch.tensor([0.1, 0.7, 0.2, 0.9]), torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 1, 1]))
    values = computed(metrics)
    threshold_free = ("auroc", "auprc")
    episodes = ("episodes_total", "episodes_detected", "time_to_detection_mean")
    batadal = ("batadal_s", "batadal_s_ttd", "batadal_s_cm")
    names = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "fpr", *threshold_free, *episodes, *batadal)
    assert set(values) == {f"test/{n}" for n in names}
    assert values["test/accuracy"] == pytest.approx(0.75)


def test_recall_per_attack_type_shows_an_attack_type_missed_entirely():
    attack_names = ["normal", "dos", "replay"]
    targets = torch.tensor([0, 1, 1, 1, 1, 0])
    attacks = torch.tensor([0, 1, 1, 2, 2, 0])  # two dos windows, both caught; two replay windows, both missed
    predicted = torch.tensor([0, 1, 1, 0, 0, 0])
    metrics = DetectionMetrics(["normal", "attack"], attack_names)
    metrics.update(predicted.float(), predicted, targets, attacks)
    values = computed(metrics)
    assert values["test/recall_attack/dos"] == 1.0
    assert values["test/recall_attack/replay"] == 0.0
    assert values["test/f1_macro"] > 0.6  # a decent macro-F1 hides the missed attack type


def test_metrics_undefined_on_one_class_are_absent_not_zero_and_raise_no_warning():
    metrics = DetectionMetrics(["normal", "attack"])
    metrics.update(torch.tensor([0.9, 0.8]), torch.tensor([1, 0]), torch.tensor([1, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = computed(metrics)
    assert "test/auroc" not in values and "test/fpr" not in values
    assert values["test/accuracy"] == 0.5


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    metrics = DetectionMetrics(["normal", "attack"])
    metrics.update(torch.zeros(4), torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]))
    assert metrics.confusion().tolist() == [[1, 1], [0, 2]]
