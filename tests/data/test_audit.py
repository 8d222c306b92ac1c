"""The leakage audit: flags raw ToN-IoT (time, formatting), passes the loaded frame, and each check alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinids.data.audit import AuditReport, audit_frame, raw_frame
from twinids.data.sources import ton_iot
from twinids.errors import TwinIDSError


@pytest.fixture(scope="module")
def raw_report(shared_datasets: Path) -> AuditReport:
    return audit_frame(raw_frame("ton_iot", str(shared_datasets / "ton_iot")))


@pytest.fixture(scope="module")
def loaded_report(shared_datasets: Path, source_settings) -> AuditReport:
    return audit_frame(ton_iot.load(**source_settings("ton_iot", root=str(shared_datasets / "ton_iot"))))


def rows(count: int = 400, seed: int = 0) -> pd.DataFrame:
    """Balanced labels with an uninformative noise feature."""
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1], count // 2)
    return pd.DataFrame({"noise": rng.normal(size=count), "label": label})


def test_raw_ton_iot_fails_on_its_time_columns(raw_report):
    assert not raw_report.passed
    assert {"ts", "date"} <= {score.feature for score in raw_report.leaks}


def test_raw_ton_iot_fails_on_its_label_dependent_formatting(raw_report):
    leaks = {score.feature for score in raw_report.leaks}
    assert {"format(temp_condition)", "format(sphone_signal)"} <= leaks


def test_loaded_ton_iot_passes(loaded_report):
    assert loaded_report.passed, loaded_report.findings
    assert loaded_report.split_used.startswith("column 'split'")


def test_a_feature_equal_to_the_label_is_a_leak():
    frame = rows().assign(copy=lambda f: f["label"] * 3.0)
    report = audit_frame(frame)
    assert [score.feature for score in report.leaks] == ["copy"]
    assert report.findings[0].startswith("LEAK: copy")


def test_noise_passes():
    report = audit_frame(rows())
    assert report.passed and report.to_frame()["macro_f1"].max() < 0.7


def test_trailing_spaces_only_in_normal_rows_are_a_formatting_leak():
    frame = rows().assign(state=lambda f: np.where(f["label"] == 0, "high ", "high"))
    scores = {score.feature: score.macro_f1 for score in audit_frame(frame).scores}
    assert scores["format(state)"] == 1.0
    assert scores["state"] < 0.7


def test_true_false_against_zero_one_is_a_formatting_leak():
    coin = np.random.default_rng(1).integers(0, 2, 400)
    frame = rows().assign(signal=np.where(rows()["label"] == 0, np.where(coin, "true", "false"), coin.astype(str)))
    leaks = {score.feature for score in audit_frame(frame).leaks}
    assert leaks == {"format(signal)", "signal"}


def test_threshold_is_a_parameter():
    frame = rows()
    frame["mostly"] = np.where(np.arange(400) % 10 == 0, 1 - frame["label"], frame["label"])
    assert audit_frame(frame).passed
    assert not audit_frame(frame, threshold=0.85).passed


def test_constant_columns_are_reported():
    report = audit_frame(rows().assign(flat=7.0))
    assert report.constant == ["flat"]


def test_rows_repeated_between_train_and_test_are_counted():
    frame = pd.DataFrame({"x": [1.0, 2.0, 1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1, 0, 1]})
    frame["split"] = ["train", "train", "test", "test", "test", "test"]
    report = audit_frame(frame)
    assert (report.shared_duplicates, report.test_rows) == (2, 4)


def test_class_balance_is_reported_per_split():
    frame = rows().assign(split=["train"] * 300 + ["val"] * 50 + ["test"] * 50)
    balance = audit_frame(frame).class_balance
    assert balance.loc["train"].tolist() == [150, 150] and balance.loc["test"].tolist() == [25, 25]


def test_without_a_split_column_a_seeded_stratified_split_is_used():
    report = audit_frame(rows())
    assert report.split_used.startswith("seeded stratified") and report.test_rows == 120


def test_single_class_train_split_falls_back_to_train_plus_val():
    frame = rows().assign(split=np.where(np.arange(400) < 200, "val", "test"))
    frame.loc[:49, "split"] = np.where(frame.loc[:49, "label"] == 0, "train", "val")
    assert "train+val" in audit_frame(frame).split_used


def test_time_text_is_read_as_time():
    frame = rows().assign(stamp=np.where(rows()["label"] == 0, "31-Mar-19", "25-Apr-19"))
    scores = {score.feature: score for score in audit_frame(frame).scores}
    assert scores["stamp"].kind == "time text" and scores["stamp"].macro_f1 == 1.0


def test_unknown_raw_dataset_is_refused():
    with pytest.raises(TwinIDSError, match="ton_iot"):
        raw_frame("kdd99", "data")
