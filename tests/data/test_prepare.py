"""From tidy frame to windows: splits that cannot leak, encoders fitted on train rows only, clear refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twinids.data.prepare import prepare_windows
from twinids.data.registry import default_window_settings
from twinids.errors import TwinIDSError


def make_frame(n_rows: int = 300, devices: tuple[str, ...] = ("pump", "tank", "fridge"), seed: int = 0) -> pd.DataFrame:
    """A small tidy frame: per device a time series with attack episodes that shift the reading."""
    rng = np.random.default_rng(seed)
    parts = []
    for device in devices:
        label = np.zeros(n_rows, dtype=int)
        for start in range(20, n_rows - 10, 37):
            label[start : start + 8] = 1
        attack = np.where(label == 1, np.where(np.arange(n_rows) % 2 == 0, "replay", "injection"), "normal")
        parts.append(
            pd.DataFrame(
                {
                    "device": device,
                    "time": np.arange(n_rows, dtype=float) * 10,
                    "reading": rng.normal(0, 1, n_rows) + 3 * label,
                    "kind": device[:3],
                    "label": label,
                    "attack": attack,
                }
            )
        )
    return pd.concat(parts).sample(frac=1.0, random_state=seed)  # shuffled: the pipeline must sort by time


def windows_rows(starts: np.ndarray, window: int) -> np.ndarray:
    return (starts[:, None] + np.arange(window)).ravel()


def test_chronological_split_puts_every_test_row_after_every_train_row_of_its_device():
    frame = make_frame()
    data = prepare_windows(frame, default_window_settings(window=10))
    # rows are stored sorted by (device, time): per device, train rows come before val and test rows
    sorted_frame = frame.sort_values(["device", "time"], kind="stable").reset_index(drop=True)
    for device in sorted_frame["device"].unique():
        device_rows = set(np.flatnonzero(sorted_frame["device"].to_numpy() == device))
        train = [r for r in windows_rows(data.starts["train"], 10) if r in device_rows]
        test = [r for r in windows_rows(data.starts["test"], 10) if r in device_rows]
        assert sorted_frame["time"].iloc[max(train)] < sorted_frame["time"].iloc[min(test)]


def test_no_row_belongs_to_windows_of_two_splits():
    data = prepare_windows(make_frame(), default_window_settings(window=15, stride=2))
    rows = {name: set(windows_rows(s, 15)) for name, s in data.starts.items()}
    assert not rows["train"] & rows["val"]
    assert not rows["train"] & rows["test"]
    assert not rows["val"] & rows["test"]


def test_scaler_is_fitted_on_training_rows_only():
    frame = make_frame()
    data = prepare_windows(frame, default_window_settings(window=5))
    shifted = frame.copy()
    late = shifted["time"] > shifted.groupby("device")["time"].transform("max") * 0.9
    shifted.loc[late, "reading"] += 1000.0  # change only test-period rows
    data_shifted = prepare_windows(shifted, default_window_settings(window=5))
    train_rows = windows_rows(data.starts["train"], 5)
    np.testing.assert_array_equal(data.rows[train_rows], data_shifted.rows[train_rows])
    reading = data.feature_names.index("reading")
    assert abs(data.rows[train_rows, reading].mean()) < 0.1


def test_categorical_features_are_one_hot_encoded_and_unseen_categories_become_zeros():
    frame = make_frame(devices=("pump", "tank"))
    frame.loc[frame["device"] == "tank", "kind"] = np.where(
        frame.loc[frame["device"] == "tank", "time"] > 2500, "new_kind", "tan"
    )
    data = prepare_windows(frame, default_window_settings(window=5))
    one_hot = [i for i, name in enumerate(data.feature_names) if name.startswith("kind_")]
    assert {data.feature_names[i] for i in one_hot} == {"kind_pum", "kind_tan"}
    ordered = frame.sort_values(["device", "time"], kind="stable").reset_index(drop=True)
    unseen = np.flatnonzero(ordered["kind"].to_numpy() == "new_kind")
    seen = np.flatnonzero(ordered["kind"].to_numpy() == "tan")
    assert len(unseen) and not data.rows[np.ix_(unseen, one_hot)].any()
    assert (data.rows[np.ix_(seen, one_hot)].sum(axis=1) == 1).all()


def test_by_device_split_holds_out_whole_devices():
    data = prepare_windows(
        make_frame(),
        default_window_settings(window=5, split_method="by_device", test_devices=("tank",), val_devices=("fridge",)),
    )
    assert data.devices == {"train": ["pump"], "val": ["fridge"], "test": ["tank"]}


def test_multiclass_targets_use_attack_names_with_normal_first():
    data = prepare_windows(make_frame(), default_window_settings(window=5, classes="multiclass"))
    assert data.class_names == ["normal", "injection", "replay"]
    assert set(np.unique(data.targets["train"])) == {0, 1, 2}


def test_multiclass_refuses_attack_types_never_seen_in_training():
    frame = make_frame()
    late_attack = (frame["label"] == 1) & (frame["time"] > 2800)
    frame.loc[late_attack, "attack"] = "zero_day"
    with pytest.raises(TwinIDSError, match="zero_day"):
        prepare_windows(frame, default_window_settings(window=5, classes="multiclass"))


def test_a_split_without_windows_is_refused_with_the_setting_to_change():
    with pytest.raises(TwinIDSError, match=r"data\.window"):
        prepare_windows(make_frame(n_rows=60), default_window_settings(window=20))


def test_training_data_with_one_class_is_refused():
    frame = make_frame()
    frame["label"] = 0
    frame["attack"] = "normal"
    with pytest.raises(TwinIDSError, match="only one class"):
        prepare_windows(frame, default_window_settings(window=5))


@pytest.mark.parametrize(
    ("field", "value"), [("label_mode", "first"), ("classes", "regression"), ("window", 0), ("split_method", "random")]
)
def test_bad_settings_are_refused_naming_the_key(field, value):
    with pytest.raises(TwinIDSError, match=field.split("_")[0]):
        prepare_windows(make_frame(), default_window_settings(**{field: value}))


def test_windows_longer_than_one_row_are_refused_for_unordered_records():
    from twinids.data.frame import mark_unordered

    with pytest.raises(TwinIDSError, match=r"data\.window=1"):
        prepare_windows(mark_unordered(make_frame()), default_window_settings(window=5))
    assert len(prepare_windows(mark_unordered(make_frame()), default_window_settings(window=1)).starts["test"]) > 0
