"""ToN-IoT Train_Test IoT telemetry: one device per file, cleaned of its label-leaking traps and split
into stratified contiguous time blocks (see datasets/ton_iot.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from twinids.data.frame import ATTACK, DEVICE, LABEL, NORMAL, SEGMENT, SPLIT, SPLITS, TIME, feature_columns
from twinids.data.sources.tabular import (
    BOOLEAN_WORDS,
    binary_labels,
    check_cells,
    finish_frame,
    normalise_values,
    per_unique,
    read_table,
    require_columns,
)
from twinids.errors import TwinIDSError, require_integer

CARD = "ton_iot"
FILE_PATTERN = re.compile(r"^train_test_iot_(?P<device>.+)\.csv$", re.IGNORECASE)
STATE_WORDS = {**BOOLEAN_WORDS, "on": 1, "off": 0, "open": 1, "closed": 0, "high": 1, "low": 0}
TIME_COLUMNS = ("ts", "date", "time")
LOCAL_OFFSET_S = 7 * 3600  # date/time are UTC(ts) - 7 h; adding it back puts Weather on the ts clock
ABSENT = "absent"


def device_files(root: str | Path, devices: str | Sequence[str]) -> dict[str, Path]:
    """Map lower-case device name -> file for the selected devices (`all`: every Train_Test_IoT_*.csv)."""
    folder = Path(root).expanduser()
    found = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            match = FILE_PATTERN.match(path.name)
            if match and path.is_file():
                found[match["device"].lower()] = path
    if isinstance(devices, str) and devices.lower() == "all":
        if not found:
            raise TwinIDSError(
                f"{CARD}: no Train_Test_IoT_<Device>.csv file in {folder.resolve()}; read datasets/{CARD}.md "
                "for where to get them (files go under data.root, default $TWINIDS_DATA or ./data)"
            )
        return found
    if isinstance(devices, Mapping) or not isinstance(devices, str | Sequence):
        raise TwinIDSError(f"{CARD}: data.source.devices must be 'all' or a list of device names; got {devices!r}")
    names = [devices] if isinstance(devices, str) else list(devices)
    if not names:
        raise TwinIDSError(f"{CARD}: data.source.devices is empty; name at least one device, or use 'all'")
    chosen = {}
    for name in names:
        key = str(name).strip().lower()
        if key not in found:
            raise TwinIDSError(
                f"{CARD}: file not found: {folder.resolve() / f'Train_Test_IoT_{name}.csv'} (name matched in "
                f"any case; present: {sorted(found)}); read datasets/{CARD}.md for where to get it"
            )
        chosen[key] = found[key]
    return chosen


def read_device(path: Path, device: str) -> pd.DataFrame:
    """One device's file as a tidy frame in time order: ts/date/time dropped as features, every string
    stripped, true/false/0/1, on/off, open/closed, high/low mapped to 0/1."""
    raw = read_table(path, CARD)
    raw.columns = [str(c).strip() for c in raw.columns]
    require_columns(raw, ["label", "type", *(["date", "time"] if "ts" not in raw.columns else [])], path, CARD)
    check_cells(raw, path, CARD)
    labels = binary_labels(raw["label"], path, CARD, "label")
    attack = per_unique(raw["type"], lambda v: str(v).strip().lower())
    disagree = (attack == NORMAL) != (labels == 0)
    if disagree.any():
        line = int(np.flatnonzero(disagree)[0]) + 2
        raise TwinIDSError(f"{CARD}: {path}: line {line}: 'label' and 'type' disagree (type normal <=> label 0)")
    features = [c for c in raw.columns if c not in (*TIME_COLUMNS, "label", "type")]
    frame = pd.DataFrame({c: normalise_values(raw[c], STATE_WORDS) for c in features})
    frame.insert(0, TIME, _seconds(raw, path))
    frame.insert(0, DEVICE, device)
    frame[LABEL] = labels
    frame[ATTACK] = attack
    if frame[LABEL].nunique() < 2:
        raise TwinIDSError(f"{CARD}: {path}: the file holds only one class; a device needs normal and attack rows")
    return frame.sort_values(TIME, kind="stable").reset_index(drop=True)


def _seconds(raw: pd.DataFrame, path: Path) -> np.ndarray:
    """Sort key in seconds: `ts`, or date+time (Weather) shifted onto the ts clock."""
    if "ts" in raw.columns:
        ts = pd.to_numeric(raw["ts"], errors="coerce")
        if ts.isna().any():
            line = int(np.flatnonzero(ts.isna().to_numpy())[0]) + 2
            raise TwinIDSError(f"{CARD}: {path}: column 'ts' is not a number at line {line}")
        return ts.to_numpy(dtype=np.float64)
    text = raw["date"].astype(str).str.strip() + " " + raw["time"].astype(str).str.strip()
    stamps = pd.to_datetime(text, format="%d-%b-%y %H:%M:%S", errors="coerce")
    if stamps.isna().any():
        line = int(np.flatnonzero(stamps.isna().to_numpy())[0]) + 2
        raise TwinIDSError(f"{CARD}: {path}: line {line}: date/time {text[line - 2]!r} is not dd-Mon-yy HH:MM:SS")
    return ((stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64) + LOCAL_OFFSET_S


def block_split(frame: pd.DataFrame, blocks: int, val_blocks: int, test_blocks: int) -> pd.DataFrame:
    """Stratified contiguous time blocks for one time-ordered device.

    Each class's rows, in time order, are cut into `blocks` equal blocks: the first ones train, then
    `val_blocks` val, the last `test_blocks` test. Classes whose time spans overlap are cut together as
    one stream, so each block is a contiguous stretch of the recording. `segment` numbers the blocks in
    time order so windows never straddle two blocks.
    """
    train_blocks = blocks - val_blocks - test_blocks
    if min(train_blocks, val_blocks, test_blocks) < 1:
        raise TwinIDSError(
            f"{CARD}: blocks={blocks}, val_blocks={val_blocks}, test_blocks={test_blocks} must leave at least "
            "one block each for train, val and test"
        )
    spans = frame.groupby(ATTACK, sort=False)[TIME].agg(["min", "max"]).sort_values(["min", "max"])
    episode_of, episode, end = {}, -1, -np.inf
    for attack, (start, stop) in spans.iterrows():
        if start > end:
            episode += 1
        end = max(end, stop)
        episode_of[attack] = episode
    episodes = per_unique(frame[ATTACK], episode_of.__getitem__).astype(np.int64)
    order = np.argsort(episodes, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.searchsorted(episodes[order], episodes[order])
    block = rank * blocks // np.bincount(episodes)[episodes]
    split = np.where(block < train_blocks, SPLITS[0], np.where(block < blocks - test_blocks, SPLITS[1], SPLITS[2]))
    frame = frame.assign(**{SPLIT: split, SEGMENT: episodes * blocks + block})
    for name in SPLITS:
        present = set(frame.loc[frame[SPLIT] == name, LABEL])
        if present != {0, 1}:
            raise TwinIDSError(
                f"{CARD}: device '{frame[DEVICE].iloc[0]}': the {name} blocks hold no "
                f"{'normal' if 0 not in present else 'attack'} rows; change blocks/val_blocks/test_blocks"
            )
    return frame


def combine_devices(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame over several devices: the union of their feature columns, a device's missing numeric
    columns filled with 0 (categorical with 'absent') plus a `has_<column>` 0/1 mask, and `device_kind`."""
    if len(frames) == 1:
        return frames[0]
    columns = list(dict.fromkeys(c for f in frames for c in feature_columns(f)))
    numeric = {c for f in frames for c in feature_columns(f) if pd.api.types.is_numeric_dtype(f[c])}
    partial = [c for c in columns if not all(c in f.columns for f in frames)]
    filled = []
    for frame in frames:
        extra = {}
        for column in partial:
            present = column in frame.columns
            if not present:
                extra[column] = 0 if column in numeric else ABSENT
            extra[f"has_{column}"] = int(present)
        extra["device_kind"] = frame[DEVICE].iloc[0]
        filled.append(frame.assign(**extra))
    order = [DEVICE, TIME, *columns, *(f"has_{c}" for c in partial), "device_kind"]
    combined = pd.concat(filled, ignore_index=True)
    return combined[order + [c for c in combined.columns if c not in order]]


def load(
    root: str,
    devices: str | Sequence[str],
    blocks: int,
    val_blocks: int,
    test_blocks: int,
) -> pd.DataFrame:
    """Load ToN-IoT devices as one tidy frame with a predefined block split (settings: configs/data/ton_iot.yaml).

    Args:
        root: folder holding the Train_Test_IoT_<Device>.csv files.
        devices: device names (file-name part, any case) or "all" for every file present.
        blocks, val_blocks, test_blocks: the stratified contiguous-block scheme (the shipped 6/1/3 of 10).

    Raises:
        TwinIDSError: missing file, malformed file, bad labels or cells, a device with one class only.
    """
    frames = [
        block_split(read_device(path, name), *_block_counts(blocks, val_blocks, test_blocks))
        for name, path in device_files(root, devices).items()
    ]
    return finish_frame(combine_devices(frames), CARD)


def _block_counts(blocks: object, val_blocks: object, test_blocks: object) -> tuple[int, int, int]:
    """The block settings as integers, refusing booleans, fractions and text (YAML's `true` is an int to Python)."""
    return (
        require_integer(blocks, "data.source.blocks"),
        require_integer(val_blocks, "data.source.val_blocks"),
        require_integer(test_blocks, "data.source.test_blocks"),
    )  # type: ignore[return-value]


def raw(root: str, devices: str | Sequence[str] = "all") -> pd.DataFrame:
    """The files as published, every cell a string (ts/date/time kept, nothing stripped), for the audit.

    `label` is the 0/1 label, `attack` the stripped `type`, `device` the file's device; the raw `time`
    column is renamed `raw_time` so that it is audited as a feature rather than read as the tidy time.
    """
    frames = []
    for name, path in device_files(root, devices).items():
        table = read_table(path, CARD, dtype=str, keep_default_na=False)
        require_columns(table, ["label", "type"], path, CARD)
        table[LABEL] = binary_labels(table["label"], path, CARD, "label")
        table[ATTACK] = table.pop("type").str.strip().str.lower()
        table[DEVICE] = name
        frames.append(table.rename(columns={TIME: f"raw_{TIME}"}))
    return pd.concat(frames, ignore_index=True)
