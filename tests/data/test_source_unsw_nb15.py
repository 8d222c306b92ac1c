"""UNSW-NB15 source on the real partition: counts, no id/attack_cat features, stratified split, bad gzip."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinids.data.frame import feature_columns
from twinids.data.sources import unsw_nb15
from twinids.errors import TwinIDSError

ATTACK_ROWS = {  # datasets/unsw_nb15/SOURCE.md
    "normal": 37_000,
    "generic": 18_871,
    "exploits": 11_132,
    "fuzzers": 6_062,
    "dos": 4_089,
    "reconnaissance": 3_496,
    "analysis": 677,
    "backdoor": 583,
    "shellcode": 378,
    "worms": 44,
}


@pytest.fixture(scope="module")
def root(shared_datasets: Path) -> Path:
    return shared_datasets / "unsw_nb15"


@pytest.fixture(scope="module")
def load(source_settings):
    """`load(root, **changes)`: unsw_nb15.load with the settings configs/data/unsw_nb15.yaml gives it."""
    return lambda root, **changes: unsw_nb15.load(**source_settings("unsw_nb15", root=str(root), **changes))


@pytest.fixture(scope="module")
def frame(load, root: Path) -> pd.DataFrame:
    """The partition as the shipped config loads it (deduplicated)."""
    return load(root)


@pytest.fixture(scope="module")
def published(load, root: Path) -> pd.DataFrame:
    """The partition with every published record (deduplicate=false)."""
    return load(root, deduplicate=False)


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(TwinIDSError) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def small_partition(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(1, rows + 1),
            "dur": np.linspace(0, 1, rows),
            "proto": "tcp",
            "attack_cat": ["Normal", "Exploits"] * (rows // 2),
            "label": [0, 1] * (rows // 2),
        }
    )


def test_every_record_loads_with_its_published_attack_counts(published):
    assert len(published) == 82_332
    assert published["attack"].value_counts().to_dict() == ATTACK_ROWS
    assert published["label"].value_counts().to_dict() == {1: 45_332, 0: 37_000}


def test_id_and_attack_cat_are_not_features(frame):
    features = feature_columns(frame)
    assert len(features) == 42 and not {"id", "attack_cat"} & set(features)
    assert [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])] == ["proto", "service", "state"]


def test_each_attack_category_is_split_70_15_15(frame):
    for attack, rows in frame.groupby("attack"):
        counts = rows["split"].value_counts()
        assert counts["test"] == round(len(rows) * 0.15), attack
        assert counts["val"] == round(len(rows) * 0.15), attack


def test_split_is_not_by_row_order(frame):
    test_rows = np.flatnonzero(frame["split"] == "test")
    tenths = np.bincount(test_rows * 10 // len(frame), minlength=10) / (len(frame) / 10)
    assert np.allclose(tenths, 0.15, atol=0.02)


def test_the_shipped_deduplication_leaves_no_test_row_repeating_a_train_rows_features(frame):
    hashes = pd.util.hash_pandas_object(frame[feature_columns(frame)], index=False)
    train = set(hashes[frame["split"] == "train"])
    assert len(frame) < 82_332 and not hashes[frame["split"] == "test"].isin(train).any()


def test_truncated_gzip_is_reported_as_corrupt(root, tmp_path, load):
    payload = (root / unsw_nb15.PUBLISHED_FILE).read_bytes()
    (tmp_path / unsw_nb15.PUBLISHED_FILE).write_bytes(payload[:200_000])
    message = error_of(load, tmp_path)
    assert "truncated or corrupt" in message and "SHA-256" in message


def test_file_that_is_not_gzip_is_reported_as_corrupt(tmp_path, load):
    (tmp_path / unsw_nb15.PUBLISHED_FILE).write_text("id,label\n1,0\n")
    assert "truncated or corrupt" in error_of(load, tmp_path)


def test_label_disagreeing_with_attack_cat_is_refused(tmp_path, load):
    table = small_partition()
    table.loc[3, "label"] = 0
    with gzip.open(tmp_path / unsw_nb15.PUBLISHED_FILE, "wt") as file:
        table.to_csv(file, index=False)
    assert "line 5" in error_of(load, tmp_path)


def test_missing_attack_cat_column_is_named(tmp_path, load):
    small_partition().drop(columns="attack_cat").to_csv(tmp_path / "part.csv", index=False)
    assert "missing column 'attack_cat'" in error_of(load, tmp_path, file="part.csv")


def test_missing_file_names_the_path_and_the_card(tmp_path, load):
    message = error_of(load, tmp_path)
    assert unsw_nb15.PUBLISHED_FILE in message and "datasets/unsw_nb15.md" in message
