"""NSL-KDD connection records: KDDTrain+_20Percent -> train/val (seeded stratified), KDDTest+ or
KDDTest-21 -> test; independent rows, so window 1 (see datasets/nsl_kdd.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from twinids.data.frame import ATTACK, DEVICE, LABEL, NORMAL, SPLIT, TIME, mark_unordered
from twinids.data.sources.tabular import (
    check_cells,
    finish_frame,
    locate,
    normalise_values,
    per_unique,
    read_table,
    require_numeric,
    stratified_split,
    wrong_delimiter,
)
from twinids.errors import TwinIDSError

CARD = "nsl_kdd"
TRAIN_FILE = "KDDTrain+_20Percent.txt"
TEST_FILES = ("KDDTest+", "KDDTest-21")
CATEGORICAL = ("protocol_type", "service", "flag")
FEATURES = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
COLUMNS = (*FEATURES, "attack_name", "difficulty")
_GROUPS = {
    "DoS": "back land neptune pod smurf teardrop apache2 mailbomb processtable udpstorm",
    "Probe": "ipsweep nmap portsweep satan mscan saint",
    "R2L": "ftp_write guess_passwd imap multihop phf spy warezclient warezmaster named sendmail "
    "snmpgetattack snmpguess xlock xsnoop worm",
    "U2R": "buffer_overflow loadmodule perl rootkit httptunnel ps sqlattack xterm",
}
CATEGORY_OF = {name: category for category, names in _GROUPS.items() for name in names.split()}
UNKNOWN_CATEGORY = "unknown"
GRANULARITIES = ("category", "name")


def category(name: str) -> str:
    """The usual KDD attack category of an attack name ("normal" stays; unmapped names -> "unknown")."""
    return name if name == NORMAL else CATEGORY_OF.get(name, UNKNOWN_CATEGORY)


def read_records(path: Path) -> pd.DataFrame:
    """One headerless NSL-KDD file as tidy rows (difficulty dropped); `time` is the row's position."""
    records = read_table(path, CARD, header=None, dtype={1: str, 2: str, 3: str, 41: str})
    if records.shape[1] != len(COLUMNS):
        wrong_delimiter(records, path, CARD)
        raise TwinIDSError(
            f"{CARD}: {path}: rows have {records.shape[1]} comma-separated fields, expected {len(COLUMNS)} "
            "(41 features, attack name, difficulty); use the original file"
        )
    records.columns = list(COLUMNS)
    check_cells(records, path, CARD, first_line=1)
    names = per_unique(records["attack_name"], lambda v: str(v).strip().lower())
    numeric_name = pd.to_numeric(pd.Series(names), errors="coerce").notna().to_numpy()
    if numeric_name.any():
        line = int(np.flatnonzero(numeric_name)[0]) + 1
        raise TwinIDSError(
            f"{CARD}: {path}: field 42 (attack name) holds {names[line - 1]!r} at line {line}; expected names "
            "such as 'normal' or 'neptune' (is the difficulty column missing?)"
        )
    frame = pd.DataFrame({c: normalise_values(records[c]) for c in FEATURES})
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(str)
    require_numeric(frame.drop(columns=list(CATEGORICAL)), path, CARD, first_line=1)
    label = (names != NORMAL).astype(np.int64)
    frame.insert(0, TIME, np.arange(len(frame), dtype=np.float64))
    frame.insert(0, DEVICE, "network")
    return frame.assign(**{LABEL: label, ATTACK: names})


def load(
    root: str,
    test_file: str,
    attack_granularity: str,
    val_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """Load NSL-KDD as one tidy frame with a predefined split (settings: configs/data/nsl_kdd.yaml).

    Args:
        root: folder holding KDDTrain+_20Percent.txt and the test file.
        test_file: "KDDTest+" or "KDDTest-21" (the hard subset); ".txt" optional.
        attack_granularity: "category" (DoS/Probe/R2L/U2R, so test classes are seen in training; names
            outside the mapping become "unknown") or "name" (the raw attack name).
        val_fraction: share of each attack name's training rows dealt to val (seeded, stratified).
        seed: the val draw's seed.

    Raises:
        TwinIDSError: unknown option, missing or malformed file, bad cells, non-numeric feature.
    """
    test_name = str(test_file).removesuffix(".txt")
    if test_name not in TEST_FILES or attack_granularity not in GRANULARITIES:
        raise TwinIDSError(
            f"{CARD}: test_file '{test_file}' / attack_granularity '{attack_granularity}' not in "
            f"{list(TEST_FILES)} / {list(GRANULARITIES)}"
        )
    train = read_records(locate(root, TRAIN_FILE, CARD))
    train[SPLIT] = stratified_split(train[ATTACK].to_numpy(), float(val_fraction), 0.0, int(seed))
    test = read_records(locate(root, f"{test_name}.txt", CARD)).assign(**{SPLIT: "test"})
    frame = pd.concat([train, test], ignore_index=True)
    if attack_granularity == "category":
        frame[ATTACK] = per_unique(frame[ATTACK], category)
    return mark_unordered(finish_frame(frame, CARD))


def raw(root: str) -> pd.DataFrame:
    """Train and KDDTest+ rows as published (difficulty kept as a feature), for the audit."""
    frames = []
    for name, split in ((TRAIN_FILE, "train"), ("KDDTest+.txt", "test")):
        path = locate(root, name, CARD)
        records = read_table(path, CARD, header=None, dtype=str, keep_default_na=False)
        records.columns = list(COLUMNS)[: records.shape[1]]
        label = (records.pop("attack_name").str.strip() != NORMAL).astype(np.int64)
        frames.append(records.assign(**{LABEL: label, ATTACK: np.where(label == 1, "attack", NORMAL), SPLIT: split}))
    return pd.concat(frames, ignore_index=True).assign(**{DEVICE: "network"})
