"""BATADAL source on the real files: both protocols, window labels, stripped names, day-first times.

Every load runs the settings configs/data/batadal.yaml gives the loader (the supervised protocol), changing only
what a test is about.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinids.data.frame import feature_columns
from twinids.data.sources import batadal
from twinids.errors import TwinIDSError

TRAIN_CONSTANT = {"S_PU1", "F_PU3", "S_PU3", "F_PU5", "S_PU5", "F_PU9", "S_PU9"}  # SOURCE.md, trap 5


@pytest.fixture(scope="module")
def root(shared_datasets: Path) -> Path:
    return shared_datasets / "batadal"


@pytest.fixture(scope="module")
def load(source_settings):
    """`load(root, **changes)`: batadal.load with the shipped settings, `changes` on top."""
    return lambda root, **changes: batadal.load(**source_settings("batadal", root=str(root), **changes))


@pytest.fixture(scope="module")
def frame(load, root: Path) -> pd.DataFrame:
    """BATADAL as the shipped config loads it."""
    return load(root)


@pytest.fixture(scope="module")
def standard_frame(load, root: Path) -> pd.DataFrame:
    """BATADAL under the standard protocol: each file in its own split, train all normal."""
    return load(root, protocol="standard")


@pytest.fixture
def copied_root(root: Path, tmp_path: Path) -> Path:
    """The data files linked into tmp_path beside an editable copy of the windows file."""
    for name in batadal.FILES.values():
        (tmp_path / name).symlink_to(root / name)
    (tmp_path / batadal.WINDOWS_FILE).write_text((root / batadal.WINDOWS_FILE).read_text())
    return tmp_path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(TwinIDSError) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_standard_protocol_puts_each_file_in_its_split_with_window_labels(standard_frame):
    counts = standard_frame.groupby(["split", "label"]).size().unstack(fill_value=0)
    assert counts.loc["train"].tolist() == [8_761, 0]
    assert counts.loc["val"].tolist() == [3_685, 492]
    assert counts.loc["test"].tolist() == [1_682, 407]


def test_every_window_labels_exactly_its_inclusive_hours(root, load):
    frame = load(root, attack_granularity="window")
    windows = pd.read_csv(root / batadal.WINDOWS_FILE)
    counted = frame["attack"].value_counts()
    for window in windows.itertuples():
        assert counted[f"attack_{window.attack_id:02d}"] == window.hours


def test_column_names_are_stripped_and_every_feature_is_numeric(frame):
    for column in feature_columns(frame):
        assert column == column.strip() and pd.api.types.is_numeric_dtype(frame[column])


def test_train_constant_columns_are_dropped(standard_frame, root, load):
    kept = load(root, protocol="standard", drop_constant=False)
    assert len(feature_columns(kept)) == 43
    assert set(feature_columns(kept)) - set(feature_columns(standard_frame)) == TRAIN_CONSTANT


def test_dates_are_read_day_first(standard_frame):
    first_val = standard_frame.loc[standard_frame["split"] == "val", "time"].min()
    assert first_val == pd.Timestamp("2016-07-04 00:00").timestamp()


def test_rows_step_one_hour_within_each_file(frame):
    for _, rows in frame.groupby("segment"):
        assert (np.diff(rows["time"].to_numpy()) == 3600).all()


def test_att_flag_is_not_a_feature(frame):
    assert "ATT_FLAG" not in frame.columns and "DATETIME" not in frame.columns


def test_the_shipped_supervised_protocol_trains_on_the_early_part_of_dataset04(frame):
    assert set(frame.loc[frame["split"] == "train", "label"]) == {0, 1}
    dataset04 = frame[frame["split"] != "test"].iloc[8_761:]
    assert (
        dataset04.loc[dataset04["split"] == "train", "time"].max()
        < dataset04.loc[dataset04["split"] == "val", "time"].min()
    )
    assert (frame["split"] == "val").sum() == round(4_177 * 0.3)


def test_flags_outside_the_windows_file_are_refused(copied_root, load):
    windows = copied_root / batadal.WINDOWS_FILE
    windows.write_text("\n".join(line for line in windows.read_text().splitlines() if not line.startswith("1,")))
    assert "ATT_FLAG=1 outside every window" in error_of(load, copied_root)


def test_window_covering_no_hour_is_refused(copied_root, load):
    windows = copied_root / batadal.WINDOWS_FILE
    windows.write_text(windows.read_text() + "15,BATADAL_test_dataset.csv,01/01/99 00,01/01/99 05,6\n")
    assert "attack 15" in error_of(load, copied_root)


def test_month_first_window_dates_are_refused(copied_root, load):
    windows = copied_root / batadal.WINDOWS_FILE
    windows.write_text(windows.read_text().replace("13/09/16 23", "09/13/16 23"))
    assert "day-first" in error_of(load, copied_root)


def test_missing_file_names_the_path_and_the_card(copied_root, load):
    (copied_root / batadal.FILES["test"]).unlink()
    message = error_of(load, copied_root)
    assert batadal.FILES["test"] in message and "datasets/batadal.md" in message
