"""The one-class protocol (task=score, data.train_on=normal): normal-only training windows, thresholds from normal
validation windows, refusals before any run, DP and eval through the same interface."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from twinids.config import compose
from twinids.data.datamodule import WindowDataModule
from twinids.data.prepare import prepare_windows
from twinids.data.registry import build_windows, default_window_settings
from twinids.errors import TwinIDSError
from twinids.training.detector import make_detector
from twinids.training.evaluate import evaluate
from twinids.training.train import train

ONE_CLASS = ["model=lstm_forecaster", "task=score", "data.train_on=normal", "model.module.net.hidden_size=8"]


def marked_frame(n_rows: int = 200, every: int = 23, length: int = 4, first: int = 5) -> pd.DataFrame:
    """One device; `marker` equals the label (a probe feature), attacks of `length` rows every `every` rows."""
    label = np.zeros(n_rows, dtype=int)
    for start in range(first, n_rows, every):
        label[start : start + length] = 1
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "device": "pump",
            "time": np.arange(n_rows, dtype=float),
            "reading": rng.normal(size=n_rows),
            "marker": label.astype(float),
            "label": label,
            "attack": np.where(label == 1, "injection", "normal"),
        }
    )


# -- the training windows ------------------------------------------------------------------------------------
def test_under_train_on_normal_exactly_the_training_windows_without_an_attacked_row_are_kept():
    frame, window = marked_frame(), 5
    data = prepare_windows(frame, default_window_settings(window=window, train_on="normal"))
    marker = data.feature_names.index("marker")
    train_windows = data.windows("train")
    assert np.all(train_windows[:, :, marker] == 0)  # checked on the rows themselves, not on the window labels
    train_rows = int(len(frame) * 0.7)
    all_normal = [s for s in range(train_rows - window + 1) if frame["label"].iloc[s : s + window].max() == 0]
    assert data.starts["train"].tolist() == all_normal
    assert data.windows("test")[:, :, marker].max() == 1  # validation and test keep their attacked windows


def test_under_train_on_normal_the_encoder_is_fitted_on_normal_training_rows_only():
    data = prepare_windows(marked_frame(), default_window_settings(window=5, train_on="normal"))
    marker = data.rows[:, data.feature_names.index("marker")]
    assert set(np.unique(marker)) == {0.0, 1.0}  # normal rows alone: mean 0, no spread, so attacks stay at 1


def test_train_on_normal_without_any_normal_training_window_is_refused_in_one_line():
    frame = marked_frame(every=4, length=2, first=0)  # an attacked row in every 5-row window
    with pytest.raises(TwinIDSError, match=r"data\.train_on=normal.*no window of 5 rows") as error:
        prepare_windows(frame, default_window_settings(window=5, train_on="normal"))
    assert "\n" not in str(error.value)


def test_batadal_standard_protocol_trains_on_every_dataset03_hour_all_normal(shared_datasets):
    overrides = ["data=batadal", "data.source.protocol=standard", f"data.root={shared_datasets}"]
    data = build_windows(compose([*overrides, "data.train_on=normal"]).data)
    assert len(data.starts["train"]) == 8761 - 23  # every 24-hour window of dataset03
    assert data.class_counts("train").tolist() == [8761 - 23, 0]
    assert data.class_counts("val")[1] > 0 and data.class_counts("test")[1] > 0
    with pytest.raises(TwinIDSError, match=r"only one class.*data\.train_on=normal"):
        build_windows(compose(overrides).data)  # supervised detectors keep refusing single-class training data


def test_a_learned_twin_can_be_kept_blind_to_the_physics_twins_columns(tmp_path, smoke_config):
    twin_columns = ["twin_primary", "twin_secondary", "residual_primary", "residual_secondary"]
    cfg = smoke_config(tmp_path, f"data.drop_features=[{','.join(twin_columns)}]")
    names = build_windows(cfg.data).feature_names
    assert not set(twin_columns) & set(names) and "sensor_primary" in names
    with pytest.raises(TwinIDSError, match=r"data\.drop_features names \['pressure'\]"):
        build_windows(smoke_config(tmp_path, "data.drop_features=[pressure]").data)


# -- refusals before any run -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=lstm_forecaster"], "one-class detector.*task=score data.train_on=normal, not task=classify"),
        (["model=lstm_autoencoder", "task=score"], r"attack windows.*data\.train_on=normal"),
        (["model=physics_residual"], "task=score data.train_on=normal, not task=classify"),
        (["model=physics_residual", "task=score", "privacy=dp", "privacy.target_epsilon=3"], "trains nothing"),
        (["model=lstm_sae_mha_score", "task=score", "data.train_on=normal", "data.classes=multiclass"], "binary"),
    ],
)
def test_settings_outside_the_one_class_protocol_fail_in_one_line_before_any_run(
    tmp_path, smoke_config, overrides, message
):
    with pytest.raises(TwinIDSError, match=message) as error:
        train(smoke_config(tmp_path, *overrides))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "outputs").exists()


def test_the_physics_residual_refuses_data_without_a_twin_residual(shared_datasets, tmp_path, smoke_config):
    cfg = smoke_config(tmp_path, "model=physics_residual", "task=score", "data=batadal", f"data.root={shared_datasets}")
    with pytest.raises(TwinIDSError, match=r"residual columns \['residual_primary', 'residual_secondary'\]"):
        make_detector(cfg, build_windows(cfg.data))


@pytest.mark.parametrize("model", ["lstm", "random_forest"])
def test_a_supervised_classifier_refuses_task_score(tmp_path, smoke_config, model):
    with pytest.raises(TwinIDSError, match=f"model={model} is a supervised classifier; it cannot run with task=score"):
        train(smoke_config(tmp_path, f"model={model}", "task=score"))
    assert not (tmp_path / "mlruns").exists()


# -- a trained one-class job ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forecaster_job(tmp_path_factory, smoke_config):
    workdir = tmp_path_factory.mktemp("forecaster")
    cfg = smoke_config(workdir, *ONE_CLASS)
    return cfg, train(cfg, ONE_CLASS)


def test_a_one_class_run_reports_threshold_free_episode_and_batadal_metrics(forecaster_job):
    _, result = forecaster_job
    for name in ("f1_macro", "auroc", "auprc", "fpr", "batadal_s", "batadal_s_ttd", "batadal_s_cm", "episodes_total"):
        assert f"test/{name}" in result.metrics, name
    assert 0 < result.metrics["test/episodes_detected"] <= result.metrics["test/episodes_total"]


def test_the_checkpoint_carries_the_calibration_as_plain_data_and_eval_reproduces_the_run(forecaster_job):
    cfg, result = forecaster_job
    calibration = torch.load(result.checkpoint, map_location="cpu", weights_only=True)["state_dict"]["_extra_state"]
    assert calibration["scorer"]["kind"] == "zscore" and calibration["threshold"] > 0
    assert evaluate(result.run_id, tracking_uri=cfg.tracking.uri).metrics == result.metrics


def test_permuting_the_test_labels_changes_no_threshold_and_no_alarm(forecaster_job):
    cfg, result = forecaster_job
    data = build_windows(cfg.data)
    shuffled = dict(data.targets, test=np.random.default_rng(0).permutation(data.targets["test"]))
    alarms, thresholds = [], []
    for windows in (data, dataclasses.replace(data, targets=shuffled)):
        detector = make_detector(cfg, windows, training=False)
        detector.load(result.checkpoint)
        trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.test(detector.module, datamodule=WindowDataModule(windows, 64, 2048, 0), verbose=False)
        alarms.append(torch.cat(detector.module.test_metrics.predicted).tolist())
        thresholds.append(detector.module.calibration.threshold)
    assert thresholds[0] == thresholds[1] and alarms[0] == alarms[1]


def test_a_private_virtual_twin_trains_on_normal_windows_with_dp_sgd(tmp_path, smoke_config):
    result = train(smoke_config(tmp_path, *ONE_CLASS, "privacy=dp", "privacy.target_epsilon=3"))
    assert 0 < result.privacy["epsilon"] <= 3.0 + 0.05
    assert "test/batadal_s" in result.metrics and "test/auroc" in result.metrics


def test_the_physics_twins_residual_is_a_detector_that_eval_reproduces(tmp_path, smoke_config):
    cfg = smoke_config(tmp_path, "model=physics_residual", "task=score")
    result = train(cfg)
    assert result.checkpoint.suffix == ".ckpt" and result.metrics["test/auroc"] > 0.9
    assert evaluate(str(result.checkpoint), tracking_uri=cfg.tracking.uri).metrics == result.metrics


def test_one_class_models_pick_epochs_by_the_normal_windows_validation_loss(smoke_config, tmp_path):
    for model in ("lstm_forecaster", "lstm_autoencoder", "lstm_sae_mha_score"):
        callbacks = smoke_config(tmp_path, f"model={model}", "task=score").callbacks
        assert (callbacks.early_stopping.monitor, callbacks.model_checkpoint.mode) == ("val/loss", "min"), model
    assert smoke_config(tmp_path).callbacks.model_checkpoint.monitor == "val/f1_macro"
