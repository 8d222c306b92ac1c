"""UNSW-NB15, the 82,332-record partition: flows without time order, stored in class stretches, so a
seeded stratified random 70/15/15 split; window 1 (see datasets/unsw_nb15.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twinids.data.frame import ATTACK, DEVICE, LABEL, NORMAL, SPLIT, TIME, mark_unordered
from twinids.data.sources.tabular import (
    binary_labels,
    check_cells,
    finish_frame,
    locate,
    normalise_values,
    per_unique,
    read_table,
    require_columns,
    require_numeric,
    stratified_split,
)
from twinids.errors import TwinIDSError

CARD = "unsw_nb15"
PUBLISHED_FILE = "UNSW_NB15_training-set.csv.gz"  # the partition the audit reads
CATEGORICAL = ("proto", "service", "state")
NOT_FEATURES = ("id", "attack_cat", "label")


def load(
    root: str,
    file: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    deduplicate: bool,
) -> pd.DataFrame:
    """Load a UNSW-NB15 partition file as one tidy frame with a seeded stratified split (settings:
    configs/data/unsw_nb15.yaml).

    Args:
        root: folder holding the file.
        file: the partition file (CSV, gzip allowed), e.g. the 82,332-record one (`PUBLISHED_FILE`).
        val_fraction, test_fraction: shares of each attack_cat's rows dealt to val and test.
        seed: the split's seed.
        deduplicate: keep only the first of rows with identical features and label (about a third of
            the 82,332 rows repeat one once `id` is dropped), so no test row repeats a train row.

    Raises:
        TwinIDSError: missing, truncated or malformed file, bad cells, label/attack_cat disagreement.
    """
    path = locate(root, file, CARD)
    raw = read_table(path, CARD)
    raw.columns = [str(c).strip() for c in raw.columns]
    require_columns(raw, NOT_FEATURES, path, CARD)
    check_cells(raw, path, CARD)
    labels = binary_labels(raw["label"], path, CARD, "label")
    attack = per_unique(raw["attack_cat"], lambda v: str(v).strip().lower())
    disagree = (attack == NORMAL) != (labels == 0)
    if disagree.any():
        line = int(np.flatnonzero(disagree)[0]) + 2
        raise TwinIDSError(f"{CARD}: {path}: line {line}: 'label' and 'attack_cat' disagree (Normal <=> label 0)")
    features = [c for c in raw.columns if c not in NOT_FEATURES]
    frame = pd.DataFrame({c: normalise_values(raw[c]) for c in features})
    for column in CATEGORICAL:
        if column in frame.columns:
            frame[column] = frame[column].astype(str)
    require_numeric(frame.drop(columns=[c for c in CATEGORICAL if c in frame.columns]), path, CARD)
    frame.insert(0, TIME, np.arange(len(frame), dtype=np.float64))
    frame.insert(0, DEVICE, "network")
    frame = frame.assign(**{LABEL: labels, ATTACK: attack})
    if deduplicate:
        # on features alone: identical flows with opposite labels would otherwise straddle the split
        frame = frame[~frame.duplicated(features)].reset_index(drop=True)
    split = stratified_split(frame[ATTACK].to_numpy(), float(val_fraction), float(test_fraction), int(seed))
    return mark_unordered(finish_frame(frame.assign(**{SPLIT: split}), CARD))


def raw(root: str) -> pd.DataFrame:
    """The 82,332-record partition as published (every cell a string, `id` kept), for the audit."""
    path = locate(root, PUBLISHED_FILE, CARD)
    table = read_table(path, CARD, dtype=str, keep_default_na=False)
    table.columns = [str(c).strip() for c in table.columns]
    require_columns(table, NOT_FEATURES, path, CARD)
    labels = binary_labels(table.pop("label"), path, CARD, "label")
    return table.assign(**{LABEL: labels, ATTACK: table.pop("attack_cat").str.strip().str.lower(), DEVICE: "network"})
