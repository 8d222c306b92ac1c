"""The one place datasets are named: the `configs/data/` group; each option's `source` builds a tidy frame."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from twinids.config import build, group_options
from twinids.data.frame import validate_frame
from twinids.data.prepare import WindowedData, WindowSettings, prepare_windows
from twinids.errors import TwinIDSError


def dataset_names() -> list[str]:
    """Every dataset a run can select with `data=<name>`."""
    return group_options("data")


def load_frame(data_cfg: DictConfig) -> pd.DataFrame:
    """Run the dataset's source (its `_target_` loader) and check the tidy-frame contract."""
    frame = build(data_cfg.source, f"data '{data_cfg.name}' source")
    if not isinstance(frame, pd.DataFrame):
        raise TwinIDSError(f"data '{data_cfg.name}': source returned {type(frame).__name__}, not a DataFrame")
    return validate_frame(frame, f"data '{data_cfg.name}'")


def window_settings(data_cfg: DictConfig) -> WindowSettings:
    """The windowing and split settings of a `data` config node."""
    split = data_cfg.split
    return WindowSettings(
        window=int(data_cfg.window),
        stride=int(data_cfg.stride),
        label_mode=str(data_cfg.label_mode),
        task=str(data_cfg.task),
        split_method=str(split.method),
        val_fraction=float(split.get("val_fraction", 0.15)),
        test_fraction=float(split.get("test_fraction", 0.15)),
        val_devices=tuple(str(d) for d in split.get("val_devices") or ()),
        test_devices=tuple(str(d) for d in split.get("test_devices") or ()),
        scaler=str(data_cfg.get("scaler", "standard")),
    )


def build_windows(data_cfg: DictConfig) -> WindowedData:
    """Load a dataset from its config and turn it into leakage-free windows."""
    settings = window_settings(data_cfg)
    return prepare_windows(load_frame(data_cfg), settings)
