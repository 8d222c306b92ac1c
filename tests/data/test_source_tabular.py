"""The generic CSV/Parquet source, on small files generated in tmp_path, and every bad-input error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinids.data.frame import feature_columns
from twinids.data.sources import tabular
from twinids.data.sources.tabular import stratified_split
from twinids.errors import TwinIDSError


def readings(rows: int = 8) -> pd.DataFrame:
    """A small telemetry table: two devices, a date-time column, a boolean text column with stray spaces."""
    return pd.DataFrame(
        {
            "stamp": [f"2024-01-01 00:00:{59 - i:02d}" for i in range(rows)],
            "sensor": [f"dev{i % 2}" for i in range(rows)],
            "reading": np.arange(rows, dtype=float) / 2,
            "valve": ["open", "closed "] * (rows // 2),
            "alarm": [" true", "false  ", "1", "0"] * (rows // 4),
            "record_id": np.arange(rows),
            "verdict": ["benign", "ddos"] * (rows // 2),
        }
    )


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "readings.csv", **kwargs: object) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return path


@pytest.fixture(scope="module")
def load(source_settings):
    """`load(root, path, **changes)`: tabular.load with the settings configs/data/csv.yaml gives it."""
    return lambda root, path, **changes: tabular.load(**source_settings("csv", root=root, path=path, **changes))


@pytest.fixture(scope="module")
def load_readings(load):
    """`load_readings(tmp_path, name="readings.csv", **changes)`: the readings file, its verdicts mapped to 0/1."""

    def load_file(tmp_path: Path, name: str = "readings.csv", **changes: object) -> pd.DataFrame:
        options = {"label_column": "verdict", "label_values": {"benign": 0, "ddos": 1}, **changes}
        return load(str(tmp_path), name, **options)

    return load_file


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(TwinIDSError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_plain_file_gets_file_stem_as_device_and_row_order_as_time(tmp_path, load):
    write(tmp_path, pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]}), "plant.csv")
    frame = load(str(tmp_path), "plant.csv")
    assert list(frame.columns) == ["device", "time", "x", "label", "attack"]
    assert set(frame["device"]) == {"plant"}
    assert frame["time"].tolist() == [0, 1, 2, 3]
    assert frame["attack"].tolist() == ["normal", "attack", "normal", "attack"]


def test_label_values_map_raw_labels_to_binary(tmp_path, load_readings):
    write(tmp_path, readings())
    assert load_readings(tmp_path)["label"].tolist() == [0, 1] * 4


def test_time_column_text_becomes_seconds_sorted_stably_per_device(tmp_path, load_readings):
    write(tmp_path, readings())
    frame = load_readings(tmp_path, time_column="stamp", group_column="sensor")
    assert frame["device"].tolist() == ["dev0"] * 4 + ["dev1"] * 4
    for _, rows in frame.groupby("device"):
        assert rows["time"].is_monotonic_increasing
    assert frame["time"].iloc[0] == pd.Timestamp("2024-01-01 00:00:53").timestamp()


def test_text_is_stripped_and_booleans_become_zero_one(tmp_path, load_readings):
    write(tmp_path, readings())
    frame = load_readings(tmp_path)
    assert frame["alarm"].tolist() == [1, 0, 1, 0] * 2
    assert set(frame["valve"]) == {"open", "closed"}
    assert set(frame["sensor"]) == {"dev0", "dev1"}


def test_drop_columns_and_named_columns_are_not_features(tmp_path, load_readings):
    write(tmp_path, readings())
    frame = load_readings(tmp_path, time_column="stamp", group_column="sensor", drop_columns=["record_id"])
    assert feature_columns(frame) == ["reading", "valve", "alarm"]


def test_attack_column_names_attacks_and_normal_rows_say_normal(tmp_path, load_readings):
    write(tmp_path, readings())
    assert load_readings(tmp_path, attack_column="verdict")["attack"].tolist() == ["normal", "ddos"] * 4


def test_split_column_becomes_the_predefined_split(tmp_path, load_readings):
    write(tmp_path, readings().assign(part=["train"] * 4 + ["val", "val", "Test", "test"]))
    frame = load_readings(tmp_path, split_column="part")
    assert frame["split"].tolist() == ["train"] * 4 + ["val", "val", "test", "test"]
    assert "part" not in frame.columns


def test_parquet_files_load_like_csv(tmp_path, load_readings):
    readings().to_parquet(tmp_path / "readings.parquet")
    frame = load_readings(tmp_path, "readings.parquet", group_column="sensor")
    assert len(frame) == 8 and set(frame["device"]) == {"dev0", "dev1"}


def test_gzip_csv_loads(tmp_path, load_readings):
    write(tmp_path, readings(), "readings.csv.gz")
    assert len(load_readings(tmp_path, "readings.csv.gz")) == 8


def test_missing_file_names_the_path_and_the_card(tmp_path, load):
    message = error_of(load, str(tmp_path), "absent.csv")
    assert str((tmp_path / "absent.csv").resolve()) in message and "datasets/csv.md" in message


def test_semicolon_file_is_reported_as_wrong_delimiter(tmp_path, load_readings):
    write(tmp_path, readings(), sep=";")
    assert "';'-separated" in error_of(load_readings, tmp_path)


def test_missing_label_column_is_named(tmp_path, load_readings):
    write(tmp_path, readings().drop(columns="verdict"))
    assert "missing column 'verdict'" in error_of(load_readings, tmp_path)


def test_label_values_outside_the_mapping_name_value_and_line(tmp_path, load_readings):
    table = readings()
    table.loc[5, "verdict"] = "mirai"
    write(tmp_path, table)
    message = error_of(load_readings, tmp_path)
    assert "'mirai'" in message and "line 7" in message and "label_values" in message


def test_unmapped_label_column_must_hold_zero_one(tmp_path, load):
    write(tmp_path, readings())
    assert "column 'verdict'" in error_of(load, str(tmp_path), "readings.csv", label_column="verdict")


def test_nan_cell_names_column_and_line(tmp_path, load_readings):
    table = readings()
    table.loc[2, "reading"] = np.nan
    write(tmp_path, table)
    message = error_of(load_readings, tmp_path)
    assert "column 'reading'" in message and "line 4" in message


def test_infinite_cell_names_column_and_line(tmp_path, load_readings):
    table = readings()
    table.loc[6, "reading"] = np.inf
    write(tmp_path, table)
    message = error_of(load_readings, tmp_path)
    assert "infinite" in message and "column 'reading'" in message and "line 8" in message


def test_empty_file_is_refused(tmp_path, load_readings):
    (tmp_path / "readings.csv").write_bytes(b"")
    assert "empty" in error_of(load_readings, tmp_path)


def test_header_without_rows_is_refused(tmp_path, load_readings):
    write(tmp_path, readings().iloc[:0])
    assert "no data rows" in error_of(load_readings, tmp_path)


def test_file_with_one_class_is_refused(tmp_path, load_readings):
    write(tmp_path, readings().assign(verdict="benign"))
    assert "every row is normal" in error_of(load_readings, tmp_path)


def test_truncated_gzip_is_reported_as_corrupt(tmp_path, load_readings):
    payload = gzip.compress(readings(400).to_csv(index=False).encode())
    (tmp_path / "readings.csv.gz").write_bytes(payload[: len(payload) // 2])
    assert "truncated or corrupt" in error_of(load_readings, tmp_path, "readings.csv.gz")


def test_non_utf8_file_is_refused(tmp_path, load_readings):
    write(tmp_path, readings().assign(valve="vanne ouverte é"), encoding="latin-1")
    assert "not UTF-8" in error_of(load_readings, tmp_path)


def test_rows_longer_than_the_header_are_refused(tmp_path, load):
    (tmp_path / "readings.csv").write_text("x,label\n1,0\n2,1,9\n")
    message = error_of(load, str(tmp_path), "readings.csv")
    assert "malformed CSV" in message and "line 3" in message


def test_reserved_column_names_must_be_mapped_or_dropped(tmp_path, load_readings):
    write(tmp_path, readings().rename(columns={"sensor": "device"}))
    assert "'device' is a reserved" in error_of(load_readings, tmp_path)


def test_stratified_split_keeps_each_stratum_share_and_is_seeded():
    strata = np.repeat(["a", "b", "c"], [100, 40, 1])
    split = stratified_split(strata, 0.15, 0.15, seed=3)
    for stratum, size in (("a", 100), ("b", 40)):
        shares = pd.Series(split[strata == stratum]).value_counts()
        assert shares["test"] == round(size * 0.15) and shares["val"] == round(size * 0.15)
    assert split[strata == "c"].tolist() == ["train"]
    assert (stratified_split(strata, 0.15, 0.15, seed=3) == split).all()


def test_time_column_that_is_neither_number_nor_date_is_refused(tmp_path, load_readings):
    write(tmp_path, readings().assign(stamp="soon"))
    assert "time_column 'stamp'" in error_of(load_readings, tmp_path, time_column="stamp")
