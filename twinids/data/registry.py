"""The one place datasets are named: the `configs/data/` group; each option's `source` builds a tidy frame."""

from __future__ import annotations

import dataclasses

import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from twinids.config import build, config_dir, group_options
from twinids.data.encoding import FeatureEncoder
from twinids.data.frame import SOURCE_FILES, validate_frame
from twinids.data.halves import training_half, training_half_block
from twinids.data.prepare import WindowedData, WindowSettings, check_evaluable, has_split_column, prepare_windows
from twinids.data.sources.tabular import recording_files_read
from twinids.errors import TwinIDSError, require_integer

WINDOW_DEFAULTS = "data/common/windows.yaml"  # the windowing defaults every data option starts from


def dataset_names() -> list[str]:
    """Every dataset a run can select with `data=<name>`."""
    return group_options("data")


def load_frame(data_cfg: DictConfig) -> pd.DataFrame:
    """Run the dataset's source (its `_target_` loader) and check the tidy-frame contract."""
    with recording_files_read() as files:
        frame = build(data_cfg.source, f"data '{data_cfg.name}' source")
    if not isinstance(frame, pd.DataFrame):
        raise TwinIDSError(f"data '{data_cfg.name}': source returned {type(frame).__name__}, not a DataFrame")
    frame = validate_frame(frame, f"data '{data_cfg.name}'")
    devices = data_cfg.get("devices")
    if devices is not None:
        frame = keep_devices(frame, devices, f"data '{data_cfg.name}'")
    frame.attrs[SOURCE_FILES] = sorted({str(path.resolve()) for path in files})
    return frame


def keep_devices(frame: pd.DataFrame, devices: object, where: str) -> pd.DataFrame:
    """The rows of the `devices` named (`data.devices`: one federated client's devices of a shared dataset, or the
    groups of a CSV's device column), before windows, splits and scalers see any row; an unknown name is refused."""
    from twinids.data.frame import DEVICE

    if isinstance(devices, str) or not isinstance(devices, list | tuple | ListConfig) or not devices:
        raise TwinIDSError(f"data.devices must be null or a non-empty list of device names; got {devices!r}")
    present = frame[DEVICE].astype(str)
    wanted = [str(device) for device in devices]
    missing = sorted(set(wanted) - set(present.unique()))
    if missing:
        known = sorted(present.unique())
        shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
        raise TwinIDSError(f"{where}: data.devices names {missing}, which the data does not hold; its devices: {shown}")
    return frame[present.isin(wanted)].reset_index(drop=True)


def default_window_settings(**changes: object) -> WindowSettings:
    """The shared windowing defaults of every dataset, with some settings changed (for tests and benchmarks)."""
    defaults = WindowSettings.from_config(OmegaConf.load(config_dir() / WINDOW_DEFAULTS))
    return dataclasses.replace(defaults, **changes)


def build_windows(
    data_cfg: DictConfig, evaluated_splits: tuple[str, ...] = ("val", "test"), encoder: FeatureEncoder | None = None
) -> WindowedData:
    """Load a dataset from its config and turn it into leakage-free windows (encoded with `encoder`, a trained
    run's, if given; else with one fitted on its training rows).

    Splits that a job evaluates must hold normal and attack windows (otherwise macro-F1, AUROC and FPR are
    undefined) unless `data.allow_undefined_metrics` is set.
    """
    frame = load_frame(data_cfg)
    settings = WindowSettings.from_config(data_cfg)
    windows = prepare_windows(frame, settings, encoder)
    data = dataclasses.replace(windows, source_files=tuple(frame.attrs[SOURCE_FILES]))
    half = data_cfg.get("train_half")
    if half is not None:
        require_integer(half, "data.train_half", 0)
        block = require_integer(data_cfg.get("train_half_block"), "data.train_half_block", 1, optional=True)
        data = training_half(data, int(half), training_half_block(block, data.window))
    if not data_cfg.allow_undefined_metrics:
        check_evaluable(data, settings.split_method, has_split_column(frame), evaluated_splits)
    return data
