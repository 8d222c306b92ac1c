"""Assign every row of a tidy frame to train/val/test without leakage: by time per device, by device, or as given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from twinids.data.frame import DEVICE, SPLIT, SPLITS
from twinids.errors import TwinIDSError

SPLIT_METHODS = ("chronological", "by_device", "predefined")


def assign_splits(
    frame: pd.DataFrame,
    method: str,
    val_fraction: float,
    test_fraction: float,
    val_devices: Sequence[str],
    test_devices: Sequence[str],
) -> np.ndarray:
    """Split name per row of a frame sorted by (device, time).

    chronological: each device's timeline is cut into contiguous train | val | test parts, so the model is
    always tested on readings later than any it trained on. by_device: whole devices are held out.
    predefined: the dataset's own protocol, from the frame's `split` column.
    """
    if method == "chronological":
        return _chronological(frame, val_fraction, test_fraction)
    if method == "by_device":
        return _by_device(frame, list(val_devices), list(test_devices))
    if method == "predefined":
        if SPLIT not in frame.columns:
            raise TwinIDSError(
                "data.split.method=predefined but this dataset has no 'split' column; use chronological or by_device"
            )
        return frame[SPLIT].to_numpy(dtype=object)
    raise TwinIDSError(f"unknown data.split.method '{method}'; valid: {', '.join(SPLIT_METHODS)}")


def _chronological(frame: pd.DataFrame, val_fraction: float, test_fraction: float) -> np.ndarray:
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise TwinIDSError(
            f"data.split fractions must satisfy 0<=val, 0<test, val+test<1; got val={val_fraction}, "
            f"test={test_fraction}"
        )
    # Position of each row within its device, and that device's row count (frame is sorted by device, time).
    position = frame.groupby(DEVICE, sort=False).cumcount().to_numpy()
    count = frame.groupby(DEVICE, sort=False)[DEVICE].transform("size").to_numpy()
    fraction = position / count
    train_end = 1.0 - val_fraction - test_fraction
    return np.where(fraction < train_end, "train", np.where(fraction < train_end + val_fraction, "val", "test"))


def _by_device(frame: pd.DataFrame, val_devices: list[str], test_devices: list[str]) -> np.ndarray:
    devices = set(frame[DEVICE].unique())
    unknown = sorted(set(val_devices + test_devices) - devices)
    if unknown:
        raise TwinIDSError(f"data.split devices {unknown} are not in the data; devices: {sorted(devices)}")
    if set(val_devices) & set(test_devices):
        raise TwinIDSError("data.split.val_devices and test_devices overlap; a device belongs to one split")
    if not test_devices:
        raise TwinIDSError("data.split.method=by_device needs data.split.test_devices=[...]")
    split = np.full(len(frame), "train", dtype=object)
    split[frame[DEVICE].isin(val_devices).to_numpy()] = "val"
    split[frame[DEVICE].isin(test_devices).to_numpy()] = "test"
    return split


def check_splits_present(split: np.ndarray) -> None:
    """Refuse a split assignment that leaves train, val or test without rows."""
    for name in SPLITS:
        if not (split == name).any():
            raise TwinIDSError(f"the '{name}' split is empty; change data.split (fractions or devices)")
