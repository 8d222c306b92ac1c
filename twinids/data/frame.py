"""The tidy frame every dataset source returns, and the check that enforces it.

One row per reading. Reserved columns:
    device   str       which physical device the row came from (one stream per device)
    time     numeric   sortable time within a device (seconds, or any monotone number)
    label    int 0/1   0 normal, 1 attack
    attack   str       "normal" or the attack type name
    split    str       optional: "train" | "val" | "test", for datasets whose protocol fixes the split
    segment  int       optional: windows never cross a change of segment within a device
Every other column is a feature: numeric (float/int/bool) or categorical (string).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twinids.errors import TwinIDSError

DEVICE, TIME, LABEL, ATTACK, SPLIT, SEGMENT = "device", "time", "label", "attack", "split", "segment"
RESERVED_COLUMNS = (DEVICE, TIME, LABEL, ATTACK, SPLIT, SEGMENT)
SPLITS = ("train", "val", "test")
NORMAL = "normal"
UNORDERED_ROWS = "unordered_rows"  # frame.attrs flag: rows are independent records (flows), `time` is a row number
SOURCE_FILES = "source_files"  # frame.attrs: the files the source read (empty for generated data)


def mark_unordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Flag a frame whose rows have no time order, so the pipeline refuses windows longer than one row."""
    frame.attrs[UNORDERED_ROWS] = True
    return frame


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Names of the feature columns of a tidy frame, in frame order."""
    return [c for c in frame.columns if c not in RESERVED_COLUMNS]


def validate_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a source's output against the tidy-frame contract; raise TwinIDSError naming the problem."""
    missing = [c for c in (DEVICE, TIME, LABEL, ATTACK) if c not in frame.columns]
    if missing:
        raise TwinIDSError(f"{source}: missing required column(s) {missing}; have {list(frame.columns)}")
    if frame.empty:
        raise TwinIDSError(f"{source}: no rows")
    features = feature_columns(frame)
    if not features:
        raise TwinIDSError(f"{source}: no feature columns besides {list(RESERVED_COLUMNS)}")
    labels = pd.unique(frame[LABEL])
    bad = [v for v in labels if v not in (0, 1)]
    if bad:
        raise TwinIDSError(f"{source}: column 'label' must be 0/1, found {bad[:5]}")
    numeric = frame[features].select_dtypes(include=["number", "bool"])
    if len(numeric.columns):
        values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        bad_mask = ~np.isfinite(values)
        if bad_mask.any():
            row, col = np.argwhere(bad_mask)[0]
            raise TwinIDSError(
                f"{source}: non-finite value (NaN/inf) in column '{numeric.columns[col]}' "
                f"at row {frame.index[row]}; clean or drop it before training"
            )
    categorical = [c for c in features if c not in numeric.columns]
    for column in categorical:
        if frame[column].isna().any():
            row = frame.index[frame[column].isna().to_numpy()][0]
            raise TwinIDSError(f"{source}: missing value in column '{column}' at row {row}")
    if SPLIT in frame.columns:
        unknown = sorted(set(pd.unique(frame[SPLIT])) - set(SPLITS))
        if unknown:
            raise TwinIDSError(f"{source}: column 'split' holds {unknown}; allowed {list(SPLITS)}")
    return frame
