"""Reading CSV/Parquet tables into tidy frames with one-line errors; also the loader for any such file.

The helpers here (read, check cells, normalise strings, binary labels, seeded stratified split, finish)
are shared by every dataset source, so each source only holds what is particular to its dataset.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from twinids.data.frame import ATTACK, DEVICE, LABEL, NORMAL, RESERVED_COLUMNS, SPLIT, SPLITS, TIME, validate_frame
from twinids.errors import TwinIDSError, first_line

BOOLEAN_WORDS = {"true": 1, "false": 0, "0": 0, "1": 1, "yes": 1, "no": 0}
DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


def locate(root: str | Path, file_name: str | Path, card: str) -> Path:
    """The path of a dataset file under `root`; raise naming the exact path and the card when absent."""
    path = Path(root).expanduser() / file_name
    if not path.is_file():
        raise TwinIDSError(
            f"{card}: file not found: {path.resolve()}; read datasets/{card}.md for where to get it "
            "(files go under data.root, default $TWINIDS_DATA or ./data)"
        )
    return path


def _refuse_duplicate_columns(path: Path, where: str, read_kwargs: dict) -> None:
    """pandas renames a repeated header name to `name.1`; refuse instead, since which column is meant is unknown."""
    header_kwargs = {k: v for k, v in read_kwargs.items() if k in ("sep", "delimiter", "encoding", "compression")}
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, **header_kwargs).iloc[0]
    repeated = sorted(set(header[header.duplicated()].astype(str)))
    if repeated:
        raise TwinIDSError(f"{where}: the header repeats column name(s) {repeated}; rename them so each is unique")


_files_read: list[list[Path]] = []  # one list per open `recording_files_read()` block


@contextmanager
def recording_files_read() -> Iterator[list[Path]]:
    """Collect the paths every `read_table` call inside the block reads (for the run's data fingerprint)."""
    files: list[Path] = []
    _files_read.append(files)
    try:
        yield files
    finally:
        _files_read.remove(files)


def read_table(path: Path, card: str, **read_kwargs: object) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file; every pandas/gzip/decoding failure becomes TwinIDSError."""
    for files in _files_read:
        files.append(Path(path))
    where = f"{card}: {path}"
    if path.stat().st_size == 0:
        raise TwinIDSError(f"{where}: the file is empty; re-download it (see datasets/{card}.md)")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            read_kwargs = {"encoding": "utf-8-sig", "index_col": False, **read_kwargs}
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(path, **read_kwargs)
            if "names" not in read_kwargs and read_kwargs.get("header", "infer") is not None:
                _refuse_duplicate_columns(path, where, read_kwargs)
    except pd.errors.EmptyDataError:
        raise TwinIDSError(f"{where}: the file holds no header and no rows; re-download it") from None
    except pd.errors.ParserWarning:
        raise TwinIDSError(f"{where}: some rows have more fields than the header; fix the file") from None
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise TwinIDSError(f"{where}: malformed CSV ({detail}); check the delimiter and field counts") from None
    except UnicodeDecodeError as error:
        raise TwinIDSError(
            f"{where}: not UTF-8 text (undecodable byte at offset {error.start}); save it as UTF-8"
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise TwinIDSError(
            f"{where}: compressed file is truncated or corrupt ({first_line(error)}); re-download it and compare its "
            f"SHA-256 with datasets/{card}.md"
        ) from None
    except (OSError, ValueError) as error:
        raise TwinIDSError(f"{where}: cannot read the file ({first_line(error)})") from None
    if frame.empty:
        raise TwinIDSError(f"{where}: the file has a header but no data rows")
    return frame


def wrong_delimiter(frame: pd.DataFrame, path: Path, card: str) -> None:
    """Raise when a file read as a single column because it uses another delimiter than ','."""
    if len(frame.columns) != 1:
        return
    sample = f"{frame.columns[0]} {frame.iloc[0, 0]}"
    for delimiter, name in DELIMITERS.items():
        if delimiter in sample:
            raise TwinIDSError(
                f"{card}: {path}: the file is {name}-separated, so it read as one column "
                f"({str(frame.columns[0])[:60]!r}); save it comma-separated"
            )


def require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path, card: str) -> None:
    """Raise naming the first missing column, or the wrong delimiter when the file read as one column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        wrong_delimiter(frame, path, card)
        raise TwinIDSError(
            f"{card}: {path}: missing column '{missing[0]}' (have {list(frame.columns)[:12]}); "
            f"use the file described in datasets/{card}.md"
        )


def require_numeric(frame: pd.DataFrame, path: Path, card: str, first_line: int = 2) -> None:
    """Raise at the first cell of these (already normalised) columns that is not a number."""
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            position = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise TwinIDSError(
                f"{card}: {path}: column '{column}' should be numeric but holds "
                f"{frame[column].iloc[position]!r} at line {position + first_line}"
            )


def check_cells(frame: pd.DataFrame, path: Path, card: str, first_line: int = 2) -> None:
    """Raise at the first empty, NaN or infinite cell, naming its column and line in the file."""
    for column in frame.columns:
        values = frame[column]
        bad = values.isna().to_numpy().copy()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            bad |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise TwinIDSError(
                f"{card}: {path}: empty, NaN or infinite cell in column '{column}' at line "
                f"{position + first_line} ({values.iloc[position]!r}); repair or remove that row"
            )


def per_unique(values: pd.Series, function: Callable[[object], object]) -> np.ndarray:
    """Apply `function` once per distinct value (fast on long, repetitive string columns)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray([function(value) for value in np.asarray(uniques, dtype=object)], dtype=object)[codes]


def normalise_values(values: pd.Series, words: Mapping[str, int] = BOOLEAN_WORDS) -> pd.Series:
    """Strip a string column; map it to 0/1 when every value is a known word (true/false/0/1...), else
    to numbers when every value parses as one, else keep the stripped strings as a category."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.int64)
    if pd.api.types.is_numeric_dtype(values):
        return values
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    stripped = np.asarray([str(v).strip() for v in np.asarray(uniques, dtype=object)], dtype=object)
    if {v.lower() for v in stripped} <= set(words):
        return pd.Series(np.asarray([words[v.lower()] for v in stripped], dtype=np.int64)[codes], index=values.index)
    numbers = pd.to_numeric(pd.Series(stripped), errors="coerce")
    if numbers.notna().all():
        return pd.Series(numbers.to_numpy()[codes], index=values.index)
    return pd.Series(stripped[codes], index=values.index)


def binary_labels(
    values: pd.Series, path: Path, card: str, column: str, mapping: Mapping | None = None, first_line: int = 2
) -> np.ndarray:
    """0/1 labels from a label column: by `mapping` (raw value -> 0/1, compared as stripped lower-case
    text) when given, else the column must already hold 0/1."""
    if mapping is None:
        mapping = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}
    lookup = {str(key).strip().lower(): int(label) for key, label in mapping.items()}
    labels = per_unique(values, lambda v: lookup.get(str(v).strip().lower(), -1)).astype(np.int64)
    bad = labels < 0
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        found = sorted({str(v) for v in values[bad].unique()[:5]})
        raise TwinIDSError(
            f"{card}: {path}: column '{column}' holds {found} (first at line {position + first_line}); "
            f"expected {sorted(lookup)}; map the values with label_values"
        )
    return labels


def stratified_split(strata: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded split of independent rows: each stratum's rows are shuffled and dealt to test, val, train
    in proportion (a stratum too small for a share keeps its rows in train)."""
    if min(val_fraction, test_fraction) < 0 or val_fraction + test_fraction >= 1:
        raise TwinIDSError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1), sum < 1")
    rng = np.random.default_rng(seed)
    split = np.full(len(strata), SPLITS[0], dtype=object)
    for stratum in pd.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        n_test, n_val = round(len(rows) * test_fraction), round(len(rows) * val_fraction)
        split[rows[:n_test]] = "test"
        split[rows[n_test : n_test + n_val]] = "val"
    return split


def finish_frame(frame: pd.DataFrame, card: str) -> pd.DataFrame:
    """Put reserved columns in place (device, time first; label, attack, split, segment last), check that
    both classes are present, and validate the tidy-frame contract."""
    frame = frame.reset_index(drop=True)
    if frame[LABEL].nunique() < 2:
        only = "attack" if frame[LABEL].iloc[0] == 1 else "normal"
        raise TwinIDSError(f"{card}: every row is {only}; a detector needs normal and attack rows")
    tail = [c for c in RESERVED_COLUMNS[2:] if c in frame.columns]
    middle = [c for c in frame.columns if c not in RESERVED_COLUMNS]
    return validate_frame(frame[[DEVICE, TIME, *middle, *tail]], card)


def load(
    root: str,
    path: str,
    label_column: str,
    attack_column: str | None,
    time_column: str | None,
    group_column: str | None,
    drop_columns: Sequence[str],
    label_values: Mapping | None,
    split_column: str | None,
    sep: str,
) -> pd.DataFrame:
    """Load any CSV/Parquet file (path absolute or relative to `root`) as a tidy frame (settings:
    configs/data/csv.yaml).

    Args:
        label_column: the label; 0/1 unless `label_values` maps raw values (e.g. {benign: 0, ddos: 1}).
        attack_column: attack-type names; None: "attack"/"normal" from the label.
        time_column: numeric or date-time column; rows are stably sorted by it within each device.
        group_column: the device of each row; None: the file's stem.
        drop_columns: columns that are not features (ids, timestamps kept only for ordering...).
        label_values: raw label value -> 0/1; None: the column already holds 0/1.
        split_column: a column holding train/val/test, copied to `split` for `split.method: predefined`.
        sep: the field delimiter of a CSV file.

    Raises:
        TwinIDSError: missing file or column, malformed file, bad cells or label values, one class only.
    """
    file = locate(root, path, "csv")
    raw = read_table(file, "csv", sep=sep)
    named = [label_column, attack_column, time_column, group_column, split_column]
    used = [c for c in named if c] + list(drop_columns)
    require_columns(raw, used, file, "csv")
    check_cells(raw.drop(columns=list(drop_columns)), file, "csv")
    labels = binary_labels(raw[label_column], file, "csv", label_column, label_values)
    features = raw.drop(columns=list(dict.fromkeys(used)))
    clash = [c for c in features.columns if c in RESERVED_COLUMNS]
    if clash:
        raise TwinIDSError(
            f"csv: {file}: column '{clash[0]}' is a reserved tidy-frame name; name it as time_column/"
            "group_column/split_column or add it to drop_columns"
        )
    frame = pd.DataFrame({c: normalise_values(features[c]) for c in features.columns})
    frame[DEVICE] = raw[group_column].astype(str).str.strip() if group_column else file.name.split(".")[0]
    frame[TIME] = _time_values(raw[time_column], file, time_column) if time_column else np.arange(len(raw))
    frame[LABEL] = labels
    if attack_column:
        frame[ATTACK] = np.where(labels == 0, NORMAL, raw[attack_column].astype(str).str.strip())
    else:
        frame[ATTACK] = np.where(labels == 0, NORMAL, "attack")
    if split_column:
        frame[SPLIT] = raw[split_column].astype(str).str.strip().str.lower()
    if time_column:
        frame = frame.sort_values([DEVICE, TIME], kind="stable")
    return finish_frame(frame, f"csv: {file}")


def _time_values(values: pd.Series, path: Path, column: str) -> np.ndarray:
    """Numeric times as they are; date-time text as seconds since the epoch."""
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64)
    text = values.astype(str).str.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            stamps = pd.to_datetime(text)
    except (ValueError, TypeError) as error:
        raise TwinIDSError(
            f"csv: {path}: time_column '{column}' is neither numeric nor date-time text ({first_line(error)})"
        ) from None
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert(None)
    return ((stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
