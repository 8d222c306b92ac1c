"""BATADAL (C-Town water network SCADA, hourly): dataset03 -> train, dataset04 -> val, test -> test,
every hour labelled from the disclosed attack windows (see datasets/batadal.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from twinids.data.frame import ATTACK, DEVICE, LABEL, NORMAL, SEGMENT, SPLIT, TIME
from twinids.data.sources.tabular import (
    check_cells,
    finish_frame,
    locate,
    normalise_values,
    read_table,
    require_columns,
    require_numeric,
)
from twinids.errors import TwinIDSError

CARD = "batadal"
FILES = {"train": "BATADAL_dataset03.csv", "val": "BATADAL_dataset04.csv", "test": "BATADAL_test_dataset.csv"}
WINDOWS_FILE = "BATADAL_attack_windows.csv"
DATE_FORMAT = "%d/%m/%y %H"
FLAG = "ATT_FLAG"
FLAG_VALUES = (0, 1, -999)  # -999: "not disclosed", NOT normal
GRANULARITIES = ("generic", "window")
PROTOCOLS = ("standard", "supervised")
TIDY = (LABEL, ATTACK, SPLIT, SEGMENT)


def _stamps(text: pd.Series, path: Path, column: str, first_line: int = 2) -> pd.Series:
    """Day-first `dd/mm/yy HH` text as timestamps; raise at the first that does not parse."""
    stamps = pd.to_datetime(text.astype(str).str.strip(), format=DATE_FORMAT, errors="coerce")
    if stamps.isna().any():
        position = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise TwinIDSError(
            f"{CARD}: {path}: column '{column}' line {position + first_line}: {text.iloc[position]!r} "
            "is not a day-first 'dd/mm/yy HH' time"
        )
    return stamps


def read_windows(root: str | Path) -> pd.DataFrame:
    """The disclosed attack windows (attack_id, file, start, end; hours inclusive)."""
    path = locate(root, WINDOWS_FILE, CARD)
    windows = read_table(path, CARD, skipinitialspace=True)
    windows.columns = [str(c).strip() for c in windows.columns]
    require_columns(windows, ["attack_id", "file", "start", "end"], path, CARD)
    check_cells(windows[["attack_id", "file", "start", "end"]], path, CARD)
    windows["file"] = windows["file"].astype(str).str.strip()
    unknown = sorted(set(windows["file"]) - set(FILES.values()))
    if unknown:
        raise TwinIDSError(f"{CARD}: {path}: column 'file' names {unknown}; expected one of {list(FILES.values())}")
    windows["start"] = _stamps(windows["start"], path, "start")
    windows["end"] = _stamps(windows["end"], path, "end")
    backwards = (windows["end"] < windows["start"]).to_numpy()
    if backwards.any():
        raise TwinIDSError(f"{CARD}: {path}: line {int(np.flatnonzero(backwards)[0]) + 2}: end is before start")
    return windows


def read_period(root: str | Path, split: str, windows: pd.DataFrame, granularity: str) -> pd.DataFrame:
    """One file as tidy rows of one split, labelled hour by hour from the windows (inclusive hours)."""
    path = locate(root, FILES[split], CARD)
    raw = read_table(path, CARD, skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    require_columns(raw, ["DATETIME"], path, CARD)
    check_cells(raw, path, CARD)
    stamps = _stamps(raw["DATETIME"], path, "DATETIME")
    label = np.zeros(len(raw), dtype=np.int64)
    attack = np.full(len(raw), NORMAL, dtype=object)
    for window in windows[windows["file"] == FILES[split]].itertuples():
        inside = ((stamps >= window.start) & (stamps <= window.end)).to_numpy()
        if not inside.any():
            raise TwinIDSError(
                f"{CARD}: {WINDOWS_FILE}: attack {window.attack_id} ({window.start} to {window.end}) covers no "
                f"hour of {path.name}"
            )
        label[inside] = 1
        attack[inside] = "attack" if granularity == "generic" else f"attack_{int(window.attack_id):02d}"
    if FLAG in raw.columns:
        _check_flags(raw[FLAG], label, path)
    sensors = raw.drop(columns=["DATETIME", FLAG], errors="ignore")
    frame = pd.DataFrame({c: normalise_values(sensors[c]) for c in sensors.columns})
    require_numeric(frame, path, CARD)
    frame.insert(0, TIME, ((stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64))
    frame.insert(0, DEVICE, "ctown")
    return frame.assign(**{LABEL: label, ATTACK: attack, SPLIT: split, SEGMENT: list(FILES).index(split)})


def _check_flags(flags: pd.Series, label: np.ndarray, path: Path) -> None:
    """ATT_FLAG must hold 0/1/-999, and every hour flagged 1 must fall inside a disclosed window."""
    values = pd.to_numeric(flags, errors="coerce")
    bad = ~values.isin(FLAG_VALUES).to_numpy()
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise TwinIDSError(
            f"{CARD}: {path}: column '{FLAG}' holds {flags.iloc[position]!r} at line {position + 2}; "
            f"expected {list(FLAG_VALUES)}"
        )
    outside = (values.to_numpy() == 1) & (label == 0)
    if outside.any():
        raise TwinIDSError(
            f"{CARD}: {path}: line {int(np.flatnonzero(outside)[0]) + 2} has {FLAG}=1 outside every window "
            f"of {WINDOWS_FILE}; the windows file does not match this data"
        )


def load(
    root: str,
    protocol: str,
    val_fraction: float,
    drop_constant: bool,
    attack_granularity: str,
) -> pd.DataFrame:
    """Load BATADAL as one tidy frame with a predefined split (settings: configs/data/batadal.yaml).

    Args:
        root: folder holding the three BATADAL files and BATADAL_attack_windows.csv.
        protocol: "standard" (dataset03 -> train, dataset04 -> val, test file -> test; train is all
            normal, for detectors that learn normal behaviour) or "supervised" (dataset03 and the first
            1 - val_fraction of dataset04 in time -> train, the rest of dataset04 -> val, test file -> test).
        val_fraction: the time-final share of dataset04 kept for val under the supervised protocol.
        drop_constant: drop sensor columns that are constant in the train rows: they carry nothing a
            detector could learn and give a zero-variance scaler.
        attack_granularity: "generic" (every attack hour is "attack") or "window" ("attack_01".."attack_14").

    Raises:
        TwinIDSError: missing or malformed file, unparsable time, flag outside the windows, column mismatch.
    """
    if attack_granularity not in GRANULARITIES or protocol not in PROTOCOLS:
        raise TwinIDSError(
            f"{CARD}: protocol '{protocol}' / attack_granularity '{attack_granularity}' not in "
            f"{list(PROTOCOLS)} / {list(GRANULARITIES)}"
        )
    windows = read_windows(root)
    periods = [read_period(root, split, windows, attack_granularity) for split in FILES]
    columns = list(periods[0].columns)
    for split, period in zip(FILES, periods, strict=True):
        differ = sorted(set(columns) ^ set(period.columns))
        if differ:
            raise TwinIDSError(
                f"{CARD}: {FILES[split]} and {FILES['train']} differ in columns {differ}; use the original files"
            )
    frame = pd.concat(periods, ignore_index=True)[columns]
    if protocol == "supervised":
        if not 0 < float(val_fraction) < 1:
            raise TwinIDSError(f"{CARD}: val_fraction must be in (0, 1); got {val_fraction}")
        dataset04 = np.flatnonzero((frame[SPLIT] == "val").to_numpy())
        cut = dataset04[: round(len(dataset04) * (1 - float(val_fraction)))]
        frame.loc[cut, SPLIT] = "train"
        frame[SEGMENT] = pd.factorize(frame[SEGMENT].astype(str) + frame[SPLIT])[0]
    if drop_constant:
        train = frame.loc[frame[SPLIT] == "train", periods[0].columns.drop([DEVICE, TIME, *TIDY])]
        frame = frame.drop(columns=[c for c in train.columns if train[c].nunique() <= 1])
    return finish_frame(frame, CARD)


def raw(root: str) -> pd.DataFrame:
    """The three files as published (every cell a string, DATETIME and ATT_FLAG kept) for the audit;
    `label`/`attack` come from the windows file, `split` is the file's role."""
    windows = read_windows(root)
    frames = []
    for split, name in FILES.items():
        path = locate(root, name, CARD)
        table = read_table(path, CARD, dtype=str, keep_default_na=False)
        table.columns = [str(c).strip() for c in table.columns]
        require_columns(table, ["DATETIME"], path, CARD)
        labelled = read_period(root, split, windows, "generic")
        tidy = {LABEL: labelled[LABEL], ATTACK: labelled[ATTACK], SPLIT: split, DEVICE: "ctown"}
        frames.append(table.assign(**tidy))
    return pd.concat(frames, ignore_index=True)
