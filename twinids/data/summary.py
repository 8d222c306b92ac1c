"""What a dataset looks like after the pipeline: rows, features, windows and class balance per split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from twinids.data.frame import SPLITS, feature_columns
from twinids.data.prepare import WindowSettings, prepare_windows
from twinids.data.registry import load_frame


@dataclass(frozen=True)
class DatasetSummary:
    """Counts that tell whether a dataset is fit to train on, per split."""

    name: str
    rows: int
    devices: dict[str, list[str]]
    raw_features: list[str]
    encoded_features: int
    window: int
    class_names: list[str]
    windows: dict[str, int]
    class_counts: dict[str, list[int]]


def summarize(data_cfg: DictConfig) -> DatasetSummary:
    """Load a dataset through the full pipeline and count what each split holds."""
    frame = load_frame(data_cfg)
    data = prepare_windows(frame, WindowSettings.from_config(data_cfg))
    return DatasetSummary(
        name=str(data_cfg.name),
        rows=len(frame),
        devices=data.devices,
        raw_features=feature_columns(frame),
        encoded_features=data.n_features,
        window=data.window,
        class_names=data.class_names,
        windows={split: len(data.starts[split]) for split in SPLITS},
        class_counts={split: np.asarray(data.class_counts(split)).tolist() for split in SPLITS},
    )
