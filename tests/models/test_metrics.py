"""Detection metrics agree with scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from twinids.training.metrics import detection_metrics


def test_binary_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, 500)
    p_attack = np.clip(target * 0.3 + rng.random(500) * 0.7, 0, 1)
    probabilities = torch.tensor(np.stack([1 - p_attack, p_attack], axis=1), dtype=torch.float32)
    metrics = detection_metrics(2, "test")
    metrics.update(probabilities, torch.tensor(target))
    values = {k: float(v) for k, v in metrics.compute().items()}
    predicted = (p_attack > 0.5).astype(int)
    normal = target == 0
    assert np.isclose(values["test/accuracy"], accuracy_score(target, predicted))
    assert np.isclose(values["test/f1_macro"], f1_score(target, predicted, average="macro"))
    assert np.isclose(values["test/precision_macro"], precision_score(target, predicted, average="macro"))
    assert np.isclose(values["test/recall_macro"], recall_score(target, predicted, average="macro"))
    assert np.isclose(values["test/auroc"], roc_auc_score(target, p_attack), atol=1e-4)
    assert np.isclose(values["test/fpr"], predicted[normal].mean())


def test_false_positive_rate_counts_normal_windows_flagged_as_any_attack_class():
    probabilities = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    target = torch.tensor([0, 0, 0, 1])
    metrics = detection_metrics(3, "val")
    metrics.update(probabilities, target)
    assert float(metrics.compute()["val/fpr"]) == pytest.approx(2 / 3)


def test_multiclass_auroc_scores_attack_versus_normal_and_ovr_macro_is_logged_beside_it():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 2.0 * np.eye(3)[target]
    probabilities = torch.softmax(torch.tensor(logits, dtype=torch.float32), dim=1)
    metrics = detection_metrics(3, "test")
    metrics.update(probabilities, torch.tensor(target))
    values = {k: float(v) for k, v in metrics.compute().items()}
    attack_score = 1 - probabilities[:, 0].numpy()
    assert np.isclose(values["test/auroc"], roc_auc_score(target != 0, attack_score), atol=1e-4)
    ovr = roc_auc_score(target, probabilities.numpy(), multi_class="ovr", average="macro")
    assert np.isclose(values["test/auroc_ovr_macro"], ovr, atol=1e-4)
