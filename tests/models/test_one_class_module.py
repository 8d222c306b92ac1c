"""One-class modules: label-free per-window losses, a calibration fitted on normal validation windows only and
carried by the state dict, and the episode metrics and BATADAL score every detector reports."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import average_precision_score
from torch.utils.data import DataLoader

from twinids.data.datamodule import WindowDataset, keep_batch
from twinids.errors import TwinIDSError
from twinids.models.lstm_forecaster import LSTMForecaster
from twinids.models.lstm_sae_mha import LSTMSAEMHADetector
from twinids.models.metrics import DetectionMetrics
from twinids.models.one_class import ErrorTermModule, PredictionLoss, PredictionModule
from twinids.scoring import ResidualScorer
from twinids.scoring.calibration import ErrorRatioScorer, ScoreCalibration

CLASSES = ["normal", "attack"]
SCORER = {"kind": "zscore", "smooth": 1, "last_steps": None}
THRESHOLD = {"target_fpr": 0.1}


def forecaster_module(**changes) -> PredictionModule:
    torch.manual_seed(0)
    settings = {
        "net": LSTMForecaster(n_features=2, hidden_size=4, num_layers=1, horizon=1, dropout=0.0),
        "optimizer": lambda params: torch.optim.Adam(params, lr=0.01),
        "class_names": CLASSES,
        "scorer": SCORER,
        "threshold": THRESHOLD,
        "attack_names": ["normal", "attack"],
        "train_class_counts": [50, 0],
    }
    return PredictionModule(**{**settings, **changes})


def stream(n: int = 120, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Rows of a smooth 2-feature signal, with readings 40..59 shifted (the attack), and each row's label."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    rows = np.stack([np.sin(t / 5), np.cos(t / 7)], axis=1) + rng.normal(0, 0.05, (n, 2))
    labels = np.zeros(n, dtype=np.int64)
    labels[40:60] = 1
    rows[40:60] += 2.0
    return torch.tensor(rows, dtype=torch.float32), labels, np.arange(n - 5)


def loader(rows: torch.Tensor, labels: np.ndarray, starts: np.ndarray, window: int = 6) -> DataLoader:
    targets = labels[starts + window - 1]
    dataset = WindowDataset(rows, starts, targets, window, targets, np.zeros(len(starts), dtype=np.int64))
    return DataLoader(dataset, batch_size=32, shuffle=False, collate_fn=keep_batch)


def quiet_trainer(**settings) -> pl.Trainer:
    return pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **settings
    )


# -- training never reads labels ----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_the_training_loss_of_a_batch_is_the_same_whatever_its_labels():
    module = forecaster_module()
    windows = torch.randn(8, 6, 2)
    batch = (windows, torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long), torch.zeros(8))
    flipped = (windows, torch.ones(8, dtype=torch.long), torch.ones(8, dtype=torch.long), torch.zeros(8))
    assert module.training_step(batch, 0).item() == module.training_step(flipped, 0).item()


def test_the_loss_is_the_mean_squared_forecast_residual_per_window_for_dp_sgd():
    module = forecaster_module()
    windows = torch.randn(5, 6, 2)
    output = module.net(windows)
    per_window = PredictionLoss(reduction="none")(output, windows)
    expected = (windows[:, -1:] - output).square().mean(dim=(1, 2))
    torch.testing.assert_close(per_window, expected)
    torch.testing.assert_close(module.loss(output, windows), expected.mean())


def test_one_windows_loss_does_not_depend_on_the_other_windows_of_its_batch():
    module = forecaster_module().eval()
    windows = torch.randn(4, 6, 2)
    changed = windows.clone()
    changed[1:] += 5.0
    loss = PredictionLoss(reduction="none")
    assert loss(module.net(windows), windows)[0] == loss(module.net(changed), changed)[0]


def test_the_hybrids_one_class_loss_is_its_weighted_error_terms_without_a_classification_term():
    torch.manual_seed(0)
    net = LSTMSAEMHADetector(
        n_features=3,
        n_classes=2,
        hidden_size=4,
        num_layers=1,
        code_size=4,
        heads=2,
        sparsity="kl",
        sparsity_target=0.05,
        pooling="mean",
        dropout=0.0,
        attention_dropout=0.0,
    )
    module = ErrorTermModule(
        net, lambda p: torch.optim.Adam(p), CLASSES, {"reconstruction": 1.0, "sparsity": 0.5}, "reconstruction",
        {"smooth": 1}, THRESHOLD, train_class_counts=[10, 0], frozen=["attention", "head"],
    )  # fmt: skip
    windows = torch.randn(3, 5, 3)
    _, terms = net(windows)
    torch.testing.assert_close(
        module.loss(net(windows), windows), (terms["reconstruction"] + 0.5 * terms["sparsity"]).mean()
    )
    assert not any(p.requires_grad for p in (*net.attention.parameters(), *net.head.parameters()))
    assert all(p.requires_grad for p in net.lstm.parameters())


# -- calibration: normal validation windows only --------------------------------------------------------------
def test_a_hand_computed_calibration_scores_squared_z_and_thresholds_at_the_normal_quantile():
    deviations = np.array([-3.0, -1.0, 1.0, 3.0, 5.0])[:, None, None]  # normal: mean 0, population variance 5
    calibration = ScoreCalibration(ResidualScorer("zscore"), smooth=1, target_fpr=0.25)
    scores = calibration.fit(deviations, np.arange(5) < 4, np.zeros(5))
    np.testing.assert_allclose(scores, [1.8, 0.2, 0.2, 1.8, 5.0])
    assert calibration.threshold == pytest.approx(1.8)  # 4 normal scores, floor(0.25 * 4) = 1 may alarm
    assert calibration.alarms(scores).tolist() == [False] * 4 + [True]  # ties with the threshold stay quiet


def test_the_threshold_ignores_the_attack_windows_of_the_validation_split():
    rng = np.random.default_rng(1)
    deviations = rng.normal(size=(200, 1, 3))
    normal = rng.random(200) > 0.2
    louder = deviations.copy()
    louder[~normal] *= 100.0
    fitted = [ScoreCalibration(ResidualScorer("zscore"), 1, 0.05) for _ in range(2)]
    fitted[0].fit(deviations, normal, np.zeros(200))
    fitted[1].fit(louder, normal, np.zeros(200))
    assert fitted[0].threshold == fitted[1].threshold


def test_smoothing_is_causal_and_stays_inside_a_group():
    calibration = ScoreCalibration(ErrorRatioScorer(), smooth=2, target_fpr=0.5)
    calibration.scorer.fit(np.ones(4))
    scores = calibration.scores(np.array([1.0, 3.0, 5.0, 7.0]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(scores, [1.0, 2.0, 5.0, 6.0])


def test_an_error_below_normal_never_scores_above_one():
    scorer = ErrorRatioScorer().fit(np.array([2.0, 4.0]))
    np.testing.assert_allclose(scorer.score(np.array([0.0, 3.0, 9.0])), [0.0, 1.0, 3.0])


def test_validation_fits_the_calibration_and_the_test_alarms_ignore_test_labels():
    rows, labels, starts = stream()
    module = forecaster_module()
    trainer = quiet_trainer(max_epochs=2, num_sanity_val_steps=0)
    normal_starts = starts[[labels[s : s + 6].max() == 0 for s in starts]]
    trainer.fit(module, loader(rows, labels, normal_starts[:30]), loader(rows, labels, starts[:70]))
    threshold = module.calibration.threshold
    assert threshold is not None

    predicted = []
    for test_labels in (labels, np.random.default_rng(0).permutation(labels)):
        quiet_trainer().test(module, loader(rows, test_labels, starts[70:]), verbose=False)
        predicted.append(torch.cat(module.test_metrics.predicted).tolist())
        assert module.calibration.threshold == threshold
    assert predicted[0] == predicted[1]


def test_the_state_dict_carries_the_calibration_and_refuses_other_settings():
    module = forecaster_module()
    module.calibration.fit(np.random.default_rng(0).normal(size=(20, 1, 2)), np.ones(20, dtype=bool), np.zeros(20))
    state = module.state_dict()
    restored = forecaster_module()
    restored.load_state_dict(state)
    assert restored.calibration.threshold == module.calibration.threshold
    deviations = np.random.default_rng(1).normal(size=(5, 1, 2))
    np.testing.assert_allclose(
        restored.calibration.scores(deviations, np.zeros(5)), module.calibration.scores(deviations, np.zeros(5))
    )
    with pytest.raises(TwinIDSError, match=r"scorer\.smooth=1, not 4"):
        forecaster_module(scorer={**SCORER, "smooth": 4}).load_state_dict(state)


def test_testing_without_a_fitted_calibration_is_refused():
    rows, labels, starts = stream()
    with pytest.raises(TwinIDSError, match="no fitted scorer and threshold"):
        quiet_trainer().test(forecaster_module(), loader(rows, labels, starts), verbose=False)


# -- refusals -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train_class_counts": [50, 3]}, "3 attack windows.*data.train_on=normal"),
        ({"class_names": ["normal", "dos", "replay"]}, "data.classes=binary"),
        ({"scorer": {**SCORER, "kind": "max"}}, r"model\.module\.scorer\.kind"),
        ({"scorer": {**SCORER, "smooth": 0}}, r"model\.module\.scorer\.smooth"),
        ({"threshold": {"target_fpr": 1.5}}, r"model\.module\.threshold"),
    ],
)
def test_settings_that_break_the_one_class_protocol_are_refused_in_one_line(changes, message):
    with pytest.raises(TwinIDSError, match=message) as error:
        forecaster_module(**changes)
    assert "\n" not in str(error.value)


# -- episode metrics and the BATADAL score (every detector reports them) ----------------------------------------
def metrics_of(targets, alarms, groups=None, scores=None) -> dict[str, float]:
    metrics = DetectionMetrics(CLASSES)
    scores = torch.tensor(alarms, dtype=torch.float32) if scores is None else torch.tensor(scores)
    metrics.update(scores, torch.tensor(alarms), torch.tensor(targets), None, None,
                   None if groups is None else torch.tensor(groups))  # fmt: skip
    return {k.removeprefix("test/"): float(v) for k, v in metrics.compute().items()}


def test_episodes_time_to_detection_and_batadal_s_on_a_hand_computed_stream():
    targets = [0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
    alarms = [0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    values = metrics_of(targets, alarms)
    # episode 1: 4 steps, first alarm 1 step in; episode 2: 2 steps, missed (counts TTD = its duration)
    assert (values["episodes_total"], values["episodes_detected"], values["time_to_detection_mean"]) == (2, 1, 1)
    assert values["batadal_s_ttd"] == pytest.approx(1 - (1 / 4 + 2 / 2) / 2)
    assert values["batadal_s_cm"] == pytest.approx((2 / 6 + 4 / 5) / 2)  # TPR 2 of 6 attack steps, TNR 4 of 5
    assert values["batadal_s"] == pytest.approx((0.375 + (2 / 6 + 4 / 5) / 2) / 2)


def test_an_episode_never_spans_two_groups():
    targets, alarms = [0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0]
    assert metrics_of(targets, alarms)["episodes_total"] == 1
    values = metrics_of(targets, alarms, groups=[0, 0, 0, 1, 1, 1])
    assert (values["episodes_total"], values["episodes_detected"], values["time_to_detection_mean"]) == (2, 2, 0.5)


def test_any_attack_class_predicted_counts_as_an_alarm():
    metrics = DetectionMetrics(["normal", "dos", "replay"])
    metrics.update(torch.zeros(4), torch.tensor([0, 2, 0, 0]), torch.tensor([0, 1, 1, 0]))
    assert float(metrics.compute()["test/time_to_detection_mean"]) == 0.0


def test_without_episodes_the_episode_scores_are_absent_and_the_counts_zero():
    values = metrics_of([0, 0, 0], [0, 1, 0])
    assert (values["episodes_total"], values["episodes_detected"]) == (0, 0)
    assert not {"batadal_s", "batadal_s_ttd", "batadal_s_cm", "time_to_detection_mean", "auprc"} & set(values)


def test_auprc_is_the_average_precision_of_the_attack_score():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 2, 300)
    scores = (targets * 0.4 + rng.random(300)).astype(np.float32)
    values = metrics_of(targets.tolist(), (scores > 0.7).astype(int).tolist(), scores=scores.tolist())
    assert values["auprc"] == pytest.approx(average_precision_score(targets, scores), abs=1e-4)
