"""ToN-IoT source: the real files (counts from SOURCE.md, leak guards, block split) and generated ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinids.data.frame import feature_columns
from twinids.data.sources import ton_iot
from twinids.errors import TwinIDSError

ROWS = {  # device: (normal, attack), from datasets/ton_iot/SOURCE.md
    "fridge": (35_000, 24_944),
    "gps_tracker": (35_000, 23_960),
    "garage_door": (35_000, 24_587),
    "modbus": (35_000, 16_106),
    "motion_light": (35_000, 24_488),
    "weather": (15_000, 24_260),
}


@pytest.fixture(scope="module")
def load(source_settings):
    """`load(root, **changes)`: ton_iot.load with the settings configs/data/ton_iot.yaml gives it."""
    return lambda root, **changes: ton_iot.load(**source_settings("ton_iot", root=str(root), **changes))


@pytest.fixture(scope="module")
def frame(load, shared_datasets: Path) -> pd.DataFrame:
    """Every shipped device as the shipped config loads it."""
    return load(shared_datasets / "ton_iot")


def write_device(folder: Path, name: str, normal: int = 40, attack: int = 40, **overrides: list) -> Path:
    """A small device file in the published style: BOM, CRLF, ts/date/time, padded time cells."""
    rows = normal + attack
    ts = 1_556_000_000 + np.arange(rows) * 5
    table = pd.DataFrame(
        {
            "ts": ts,
            "date": "25-Apr-19",
            "time": " 10:00:00 ",
            "current_temperature": np.linspace(20, 30, rows).round(2),
            "thermostat_status": ["1", "0"] * (rows // 2),
            "label": [0] * normal + [1] * attack,
            "type": ["normal"] * normal + ["ddos"] * attack,
        }
    )
    for column, values in overrides.items():
        table[column] = values
    path = folder / f"Train_Test_IoT_{name}.csv"
    path.write_bytes(b"\xef\xbb\xbf" + table.to_csv(index=False, lineterminator="\r\n").encode())
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(TwinIDSError) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_every_shipped_device_loads_with_its_published_class_counts(frame):
    counts = frame.groupby(["device", "label"]).size().unstack()
    assert {device: (row[0], row[1]) for device, row in counts.iterrows()} == ROWS


def test_no_time_column_is_a_feature(frame):
    features = feature_columns(frame)
    assert not {"ts", "date", "time", "raw_time", "type"} & set(features)


def test_every_feature_is_numeric_after_cleaning(frame):
    categorical = [c for c in feature_columns(frame) if not pd.api.types.is_numeric_dtype(frame[c])]
    assert categorical == ["device_kind"]


@pytest.mark.parametrize("column", ["temp_condition", "door_state", "sphone_signal", "motion_status", "light_status"])
def test_boolean_and_state_words_become_zero_one(frame, column):
    present = frame[frame[f"has_{column}"] == 1]
    assert set(present[column]) == {0, 1}


def test_garage_door_signal_agrees_with_door_state_in_every_row(frame):
    garage = frame[frame["device"] == "garage_door"]
    assert (garage["sphone_signal"] == garage["door_state"]).all()


def test_motion_light_light_status_agrees_with_motion_in_every_row(frame):
    motion = frame[frame["device"] == "motion_light"]
    assert (motion["light_status"] == motion["motion_status"]).all()


def test_text_cells_are_stripped(frame):
    for column in ("device", "device_kind", "attack", "split"):
        values = frame[column].astype(str)
        assert (values == values.str.strip()).all(), column


def test_other_devices_columns_are_zero_filled_and_masked(frame):
    fridge = frame["device"] == "fridge"
    assert (frame.loc[~fridge, "fridge_temperature"] == 0).all()
    assert (frame["has_fridge_temperature"] == fridge.astype(int)).all()
    assert (frame["device_kind"] == frame["device"]).all()


def test_rows_are_in_time_order_within_each_device(frame):
    assert frame.groupby("device")["time"].apply(lambda t: t.is_monotonic_increasing).all()


def test_weather_date_and_time_are_put_on_the_ts_clock(frame):
    weather_normal = frame[(frame["device"] == "weather") & (frame["label"] == 0)]
    assert weather_normal["time"].min() == pd.Timestamp("2019-03-31 19:40:22").timestamp()


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_device_has_both_classes_in_every_split(frame, split):
    counts = frame[frame["split"] == split].groupby("device")["label"].nunique()
    assert len(counts) == len(ROWS) and (counts == 2).all()


def test_each_class_is_cut_six_one_three_in_contiguous_time_order(frame):
    overlapping = {("motion_light", "password"), ("motion_light", "scanning")}
    for (device, attack), rows in frame.groupby(["device", "attack"]):
        times = rows.groupby("split")["time"].agg(["min", "max"]).reindex(["train", "val", "test"])
        bounds = times.to_numpy().ravel()
        assert (np.diff(bounds[~np.isnan(bounds)]) >= 0).all(), (device, attack)
        if (device, attack) not in overlapping:
            shares = rows["split"].value_counts(normalize=True)
            assert shares["train"] == pytest.approx(0.6, abs=0.01), (device, attack)
            assert shares["test"] == pytest.approx(0.3, abs=0.01), (device, attack)


def test_classes_overlapping_in_time_are_cut_together_as_one_stream(frame):
    pair = frame[(frame["device"] == "motion_light") & frame["attack"].isin(["password", "scanning"])]
    shares = pair["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.01) and shares["test"] == pytest.approx(0.3, abs=0.01)


def test_segments_stay_contiguous_when_sorted_by_device_and_time(frame):
    ordered = frame.sort_values(["device", "time"], kind="stable")
    keys = ordered["device"] + ":" + ordered["segment"].astype(str) + ":" + ordered["split"]
    runs = int((keys != keys.shift()).sum())
    assert runs == frame.groupby("device")["segment"].nunique().sum()


def test_multiclass_test_attacks_are_all_seen_in_training(frame):
    for _, rows in frame.groupby("device"):
        assert set(rows.loc[rows["split"] == "test", "attack"]) <= set(rows.loc[rows["split"] == "train", "attack"])


def test_single_device_frame_has_only_its_own_columns(shared_datasets, load):
    fridge = load(shared_datasets / "ton_iot", devices=["FRIDGE"])
    assert list(fridge.columns) == [
        "device",
        "time",
        "fridge_temperature",
        "temp_condition",
        "label",
        "attack",
        "split",
        "segment",
    ]


def test_unshipped_device_file_is_found_by_name_in_any_case(tmp_path, load):
    write_device(tmp_path, "Thermostat")
    frame = load(tmp_path, devices=["thermostat"])
    assert set(frame["device"]) == {"thermostat"} and len(frame) == 80
    assert feature_columns(frame) == ["current_temperature", "thermostat_status"]


def test_all_takes_every_device_file_present(tmp_path, load):
    write_device(tmp_path, "Thermostat")
    write_device(tmp_path, "Boiler")
    assert set(load(tmp_path)["device"]) == {"thermostat", "boiler"}


def test_unknown_device_names_the_path_looked_for_and_the_card(tmp_path, load):
    write_device(tmp_path, "Thermostat")
    message = error_of(load, tmp_path, devices=["toaster"])
    assert "Train_Test_IoT_toaster.csv" in message and "datasets/ton_iot.md" in message


def test_empty_root_names_the_card(tmp_path, load):
    assert "datasets/ton_iot.md" in error_of(load, tmp_path / "nowhere")


def test_device_file_with_one_class_is_refused(tmp_path, load):
    write_device(tmp_path, "Thermostat", normal=80, attack=0)
    assert "only one class" in error_of(load, tmp_path)


def test_label_outside_zero_one_is_refused(tmp_path, load):
    write_device(tmp_path, "Thermostat", label=[0] * 40 + [2] * 40)
    assert "'2'" in error_of(load, tmp_path)


def test_label_and_type_disagreeing_is_refused(tmp_path, load):
    write_device(tmp_path, "Thermostat", type=["ddos"] + ["normal"] * 39 + ["ddos"] * 40)
    assert "line 2" in error_of(load, tmp_path)


def test_block_scheme_without_a_val_block_is_refused(tmp_path, load):
    write_device(tmp_path, "Thermostat")
    assert "val_blocks=0" in error_of(load, tmp_path, val_blocks=0)


def test_raw_frame_keeps_time_columns_and_unstripped_text(shared_datasets):
    raw = ton_iot.raw(str(shared_datasets / "ton_iot"), devices=["fridge"])
    assert {"ts", "date", "raw_time"} <= set(raw.columns)
    assert {"high ", "high"} <= set(raw["temp_condition"])
