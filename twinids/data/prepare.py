"""From a tidy frame to encoded rows and per-split windows: sort, split, encode on train, window, label."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twinids.data.encoding import FeatureEncoder
from twinids.data.frame import (
    ATTACK,
    DEVICE,
    LABEL,
    NORMAL,
    SEGMENT,
    SPLITS,
    TIME,
    UNORDERED_ROWS,
    feature_columns,
)
from twinids.data.splits import assign_splits, check_splits_present
from twinids.data.windows import LABEL_MODES, run_boundaries, window_starts, window_targets
from twinids.errors import TwinIDSError

TASKS = ("binary", "multiclass")


@dataclass(frozen=True)
class WindowSettings:
    """How rows become windows and targets; mirrors the `data` config group."""

    window: int = 20
    stride: int = 1
    label_mode: str = "last"
    task: str = "binary"
    split_method: str = "chronological"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    val_devices: tuple[str, ...] = ()
    test_devices: tuple[str, ...] = ()
    scaler: str = "standard"

    def __post_init__(self) -> None:
        if self.window < 1 or self.stride < 1:
            raise TwinIDSError(f"data.window and data.stride must be >= 1; got {self.window}, {self.stride}")
        if self.label_mode not in LABEL_MODES:
            raise TwinIDSError(f"unknown data.label_mode '{self.label_mode}'; valid: {', '.join(LABEL_MODES)}")
        if self.task not in TASKS:
            raise TwinIDSError(f"unknown data.task '{self.task}'; valid: {', '.join(TASKS)}")


@dataclass(frozen=True)
class WindowedData:
    """Encoded rows of all splits in one array, and for each split the window starts and targets."""

    rows: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    window: int
    starts: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    devices: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Width of one encoded row."""
        return self.rows.shape[1]

    def windows(self, split: str) -> np.ndarray:
        """All windows of a split as one (windows, time, features) array (a copy: for classical models)."""
        starts = self.starts[split]
        return self.rows[starts[:, None] + np.arange(self.window)]

    def class_counts(self, split: str) -> np.ndarray:
        """Number of windows of each class in a split."""
        return np.bincount(self.targets[split], minlength=len(self.class_names))


def prepare_windows(frame: pd.DataFrame, settings: WindowSettings) -> WindowedData:
    """Build leakage-free windows: splits assigned on time-ordered rows, encoder fitted on train rows only."""
    if frame.attrs.get(UNORDERED_ROWS) and settings.window > 1:
        raise TwinIDSError(
            f"this dataset's rows are independent records with no time order, so a window of {settings.window} "
            "rows would group unrelated records; use data.window=1"
        )
    order = np.lexsort((frame[TIME].to_numpy(), pd.factorize(frame[DEVICE], sort=True)[0]))
    if not np.array_equal(order, np.arange(len(frame))):  # sources usually deliver sorted rows: skip the copy
        frame = frame.iloc[order]
    frame = frame.reset_index(drop=True)
    split = assign_splits(
        frame,
        settings.split_method,
        settings.val_fraction,
        settings.test_fraction,
        settings.val_devices,
        settings.test_devices,
    )
    check_splits_present(split)
    train_mask = split == "train"

    features = feature_columns(frame)
    encoder = FeatureEncoder(settings.scaler).fit(frame.loc[train_mask, features])
    rows = encoder.transform(frame[features])

    class_names, row_codes = _class_codes(frame, train_mask, settings.task)
    segment = frame[SEGMENT].to_numpy() if SEGMENT in frame.columns else np.zeros(len(frame), dtype=np.int64)
    boundaries = run_boundaries(frame[DEVICE].to_numpy(dtype=object), segment, split)
    starts = window_starts(boundaries, settings.window, settings.stride)
    split_of_window = split[starts]
    by_split = {name: starts[split_of_window == name] for name in SPLITS}
    targets = {
        name: window_targets(row_codes, s, settings.window, settings.label_mode).astype(np.int64)
        for name, s in by_split.items()
    }
    for name in SPLITS:
        if len(by_split[name]) == 0:
            raise TwinIDSError(
                f"the '{name}' split has no window of {settings.window} rows; lower data.window or "
                "give that split more rows (data.split)"
            )
    if len(np.unique(targets["train"])) < 2:
        raise TwinIDSError(
            "the training windows hold only one class; a detector needs normal and attack examples "
            "(check the dataset's labels or data.split)"
        )
    devices = {name: sorted(frame.loc[split == name, DEVICE].unique().tolist()) for name in SPLITS}
    return WindowedData(rows, encoder.feature_names, class_names, settings.window, by_split, targets, devices)


def _class_codes(frame: pd.DataFrame, train_mask: np.ndarray, task: str) -> tuple[list[str], np.ndarray]:
    """Class names (normal first) and each row's class code; multiclass classes are those seen in training."""
    labels = frame[LABEL].to_numpy().astype(np.int64)
    if task == "binary":
        return [NORMAL, "attack"], labels
    names = np.where(labels == 0, NORMAL, frame[ATTACK].astype(str).to_numpy())
    attack_names = sorted(set(names[train_mask]) - {NORMAL})
    class_names = [NORMAL, *attack_names]
    unseen = sorted(set(names[~train_mask]) - set(class_names))
    if unseen:
        raise TwinIDSError(
            f"attack types {unseen} appear in val/test but never in training, so multiclass targets are "
            "undefined; use data.task=binary or a coarser attack grouping for this dataset"
        )
    code_of = {name: code for code, name in enumerate(class_names)}
    return class_names, np.vectorize(code_of.__getitem__, otypes=[np.int64])(names)
