"""NSL-KDD source on the real files: counts, categories, seeded val split, unseen names, bad files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from twinids.data.frame import feature_columns
from twinids.data.sources import nsl_kdd
from twinids.errors import TwinIDSError


@pytest.fixture(scope="module")
def root(shared_datasets: Path) -> Path:
    return shared_datasets / "nsl_kdd"


@pytest.fixture(scope="module")
def load(source_settings):
    """`load(root, **changes)`: nsl_kdd.load with the settings configs/data/nsl_kdd.yaml gives it."""
    return lambda root, **changes: nsl_kdd.load(**source_settings("nsl_kdd", root=str(root), **changes))


@pytest.fixture(scope="module")
def frame(load, root: Path) -> pd.DataFrame:
    """NSL-KDD as the shipped config loads it."""
    return load(root)


def records(root: Path, rows: int = 60) -> list[str]:
    """The first rows of the real training file, as text lines."""
    with open(root / nsl_kdd.TRAIN_FILE) as lines:
        return [next(lines).rstrip("\n") for _ in range(rows)]


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(TwinIDSError) as caught:
        call(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_train_file_feeds_train_and_val_and_the_test_file_test(frame):
    counts = frame.groupby(["split", "label"]).size().unstack()
    assert counts.loc[["train", "val"]].sum().tolist() == [13_449, 11_743]
    assert counts.loc["test"].tolist() == [9_711, 12_833]


def test_test_categories_match_the_published_mapping(frame):
    test = frame.loc[frame["split"] == "test", "attack"].value_counts()
    assert test.drop("normal").to_dict() == {"DoS": 7_458, "R2L": 2_754, "Probe": 2_421, "U2R": 200}


def test_every_test_category_is_seen_in_training(frame):
    assert set(frame.loc[frame["split"] == "test", "attack"]) <= set(frame.loc[frame["split"] == "train", "attack"])


def test_val_is_a_stratified_fifteen_percent_of_the_training_file(frame):
    part = frame[frame["split"] != "test"]
    assert (part["split"] == "val").mean() == pytest.approx(0.15, abs=0.002)
    shares = part.groupby("split")["label"].mean()
    assert shares["val"] == pytest.approx(shares["train"], abs=0.005)


def test_val_draw_depends_on_the_seed(root, frame, load):
    other = load(root, seed=1)
    assert (other["split"] != frame["split"]).any()
    assert (other["split"] == "val").sum() == (frame["split"] == "val").sum()


def test_difficulty_is_dropped_and_forty_one_features_remain(frame):
    features = feature_columns(frame)
    assert len(features) == 41 and "difficulty" not in features
    assert [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])] == list(nsl_kdd.CATEGORICAL)


def test_kddtest21_is_selectable(root, load):
    frame = load(root, test_file="KDDTest-21")
    assert frame.loc[frame["split"] == "test", "label"].value_counts().to_dict() == {1: 9_698, 0: 2_152}


def test_name_granularity_keeps_test_only_attack_names(root, load):
    frame = load(root, attack_granularity="name")
    assert {"apache2", "mscan", "worm"} <= set(frame.loc[frame["split"] == "test", "attack"])


def test_attack_names_outside_the_mapping_become_unknown(root, tmp_path, load):
    lines = records(root)
    lines[0] = lines[0].rsplit(",", 2)[0] + ",zeroday,15"
    (tmp_path / nsl_kdd.TRAIN_FILE).write_text("\n".join(lines) + "\n")
    (tmp_path / "KDDTest+.txt").write_text("\n".join(lines) + "\n")
    frame = load(tmp_path)
    assert frame.loc[frame["time"] == 0, "attack"].tolist() == ["unknown", "unknown"]
    assert frame.loc[frame["time"] == 0, "label"].tolist() == [1, 1]


def test_rows_with_a_missing_field_are_refused(root, tmp_path, load):
    lines = [line.rsplit(",", 1)[0] for line in records(root)]
    (tmp_path / nsl_kdd.TRAIN_FILE).write_text("\n".join(lines) + "\n")
    assert "expected 43" in error_of(load, tmp_path)


def test_semicolon_file_is_reported_as_wrong_delimiter(root, tmp_path, load):
    (tmp_path / nsl_kdd.TRAIN_FILE).write_text("\n".join(line.replace(",", ";") for line in records(root)) + "\n")
    assert "';'-separated" in error_of(load, tmp_path)


def test_unknown_test_file_is_refused(root, load):
    assert "KDDTest-21" in error_of(load, root, test_file="KDDTest+_full")
