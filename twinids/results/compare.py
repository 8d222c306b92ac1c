"""Group tracked runs by config keys and aggregate their metrics over seeds: mean, std and count per group.

A config key is written as in overrides (`model.name`) and read from the run's flattened param (`model/name`);
a name that is no param but a tag (`twinids.dataset`) is read from the tag. Rows whose runs differ in code
version are marked; rows whose runs differ in data fingerprint are refused unless `mix_data` is set.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twinids.errors import TwinIDSError
from twinids.tracking.config_hash import RESULT_NEUTRAL_KEYS
from twinids.tracking.provenance import CODE_VERSION_TAG, DATA_FINGERPRINT_TAG

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_METRICS = ("test/f1_macro", "test/accuracy", "test/auroc", "test/fpr")
LEADING_KEYS = ("model.name", "data.name")  # always shown first when the runs have them
PREFERRED_KEYS = ("privacy.name", "privacy.target_epsilon")  # tried first when choosing the other keys
MISSING_VALUES = ("", "None", "null")  # how a flattened config logs an unset value
CODE_MARK, DATA_MARK = "†", "‡"


@dataclass(frozen=True)
class Comparison:
    """One row per group of runs: the key values, `runs`, `<metric> mean|std|n` per metric, marks and notes.

    `marks` holds the footnote symbols of a row ("" when its runs agree), `provenance` the note in words.
    """

    table: pd.DataFrame
    by: list[str]
    metrics: list[str]
    n_runs: int

    def footnotes(self) -> list[str]:
        """One line per marked row, saying whose code versions or data fingerprints differ."""
        return [
            f"{marks} {row_label(self.by, row)}: {note}"
            for _, row in self.table.iterrows()
            if (marks := row["marks"]) and (note := row["provenance"])
        ]


def compare_runs(
    runs: pd.DataFrame,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    mix_data: bool = False,
) -> Comparison:
    """Group `runs` (from `load_runs`) by config keys and aggregate each metric over the runs of a group.

    Args:
        runs: one row per run, with `params.*`, `metrics.*` and `tags.*` columns.
        by: config keys to group by; default: model and dataset, then each key that varies across the runs
            and splits the groups further (seeds and settings that never change a result excepted).
        metrics: metric names; default: those of DEFAULT_METRICS the runs logged.
        mix_data: aggregate runs made from different data (differing `twinids.data_fingerprint`) anyway.

    Raises:
        TwinIDSError: for an unknown key or metric, or runs of one group made from different data.
    """
    import pandas as pd

    by = list(by) if by else default_keys(runs)
    columns = [key_column(runs, key) for key in by]
    metrics = resolve_metrics(runs, metrics)
    values = [[_normalised(v) for v in runs[column]] for column in columns]
    groups: dict[tuple, list[int]] = {}
    for index, label in enumerate(zip(*values, strict=True)):
        groups.setdefault(label, []).append(index)
    rows = []
    numeric = [all(_is_number(v) for v in column if v is not None) for column in values]
    for label in sorted(groups, key=lambda lbl: _sort_key(lbl, numeric)):
        members = runs.iloc[groups[label]]
        row: dict[str, object] = dict(zip(by, label, strict=True))
        row["runs"] = len(members)
        for metric in metrics:
            scores = members[f"metrics.{metric}"].dropna().to_numpy(dtype=float)
            row[f"{metric} mean"] = float(scores.mean()) if len(scores) else math.nan
            row[f"{metric} std"] = float(scores.std(ddof=1)) if len(scores) > 1 else math.nan
            row[f"{metric} n"] = len(scores)
        row["marks"], row["provenance"] = _provenance(members, by, label, mix_data)
        rows.append(row)
    return Comparison(table=pd.DataFrame(rows), by=by, metrics=metrics, n_runs=len(runs))


def key_column(runs: pd.DataFrame, key: str, option: str = "--by") -> str:
    """The column holding a config key: its param (`model.name` -> `params.model/name`), else a tag of that name.

    Raises:
        TwinIDSError: naming the key, a close match and the config keys the runs have.
    """
    for column in (f"params.{key.replace('.', '/')}", f"tags.{key}"):
        if column in runs.columns:
            return column
    known = config_keys(runs)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise TwinIDSError(f"unknown {option} key '{key}'{hint}; config keys of these runs: {', '.join(known)}")


def config_keys(runs: pd.DataFrame) -> list[str]:
    """The config keys the runs logged, dotted as in overrides."""
    return sorted(c.removeprefix("params.").replace("/", ".") for c in runs.columns if c.startswith("params."))


def default_keys(runs: pd.DataFrame) -> list[str]:
    """Model and dataset, then every other key that varies and splits the groups further, preferred ones first."""
    keys = [key for key in LEADING_KEYS if f"params.{key.replace('.', '/')}" in runs.columns]
    candidates = [key for key in config_keys(runs) if key not in keys and not _aggregated_over(key)]
    candidates.sort(key=lambda key: (PREFERRED_KEYS.index(key) if key in PREFERRED_KEYS else len(PREFERRED_KEYS), key))
    labels = [()] * len(runs)
    for key in keys:
        labels = _extend(labels, runs, key)
    for key in candidates:
        extended = _extend(labels, runs, key)
        if len(set(extended)) > len(set(labels)):
            keys.append(key)
            labels = extended
    return keys


def _aggregated_over(key: str) -> bool:
    """Seeds are what a comparison averages over; result-neutral settings never define a group."""
    if key == "seed" or key.endswith(".seed"):
        return True
    return any(key == neutral or key.startswith(f"{neutral}.") for neutral in RESULT_NEUTRAL_KEYS)


def _extend(labels: list[tuple], runs: pd.DataFrame, key: str) -> list[tuple]:
    column = runs[f"params.{key.replace('.', '/')}"]
    return [(*label, _normalised(value)) for label, value in zip(labels, column, strict=True)]


def resolve_metrics(runs: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    """The requested metrics, or the default ones the runs logged.

    Raises:
        TwinIDSError: for a metric no run logged, listing those they did.
    """
    logged = sorted(c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics."))
    if metrics:
        for metric in metrics:
            if metric not in logged:
                raise TwinIDSError(f"no run logged metric '{metric}'; metrics of these runs: {', '.join(logged)}")
        return list(metrics)
    chosen = [metric for metric in DEFAULT_METRICS if metric in logged] or [m for m in logged if m.startswith("test/")]
    if not chosen:
        raise TwinIDSError(f"these runs logged no test metrics; pick some with --metrics from: {', '.join(logged)}")
    return chosen


def _normalised(value: object) -> str | None:
    """A key's value as text, None when unset (missing param, NaN, or a logged `None`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return None if text in MISSING_VALUES else text


def _sort_key(label: tuple, numeric: list[bool]) -> tuple:
    """Order groups by each key in turn: numerically where a key's values are all numbers, unset values last."""
    parts = []
    for value, is_numeric in zip(label, numeric, strict=True):
        if value is None:
            parts.append((1, 0.0, ""))
        else:
            parts.append((0, float(value), "") if is_numeric else (0, 0.0, value))
    return tuple(parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _provenance(members: pd.DataFrame, by: list[str], label: tuple, mix_data: bool) -> tuple[str, str]:
    """(marks, note) for a group whose runs differ in code version (†) or, allowed by `mix_data`, data (‡)."""
    marks, notes = "", []
    data = _counts(members, DATA_FINGERPRINT_TAG)
    if len(data) > 1:
        if not mix_data:
            raise TwinIDSError(
                f"the runs of {row_label(by, dict(zip(by, label, strict=True)))} were made from different data "
                f"({DATA_FINGERPRINT_TAG}: {_listed(data)}); select one with --tag {DATA_FINGERPRINT_TAG}=..., "
                "or pass --mix-data to aggregate them anyway"
            )
        marks += DATA_MARK
        notes.append(f"data fingerprints differ: {_listed(data)}")
    code = _counts(members, CODE_VERSION_TAG)
    if len(code) > 1:
        marks += CODE_MARK
        notes.append(f"code versions differ: {_listed(code)}")
    return marks, "; ".join(notes)


def _counts(members: pd.DataFrame, tag: str) -> dict[str, int]:
    column = f"tags.{tag}"
    if column not in members.columns:
        return {}
    return {str(k): int(v) for k, v in members[column].dropna().value_counts().sort_index().items()}


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} ({count} run{'s' if count > 1 else ''})" for value, count in counts.items())


def row_label(by: Sequence[str], row: object) -> str:
    """`model.name=lstm, data.name=nsl_kdd` for a row (a dict or a table row)."""
    return ", ".join(f"{key}={shown_value(row[key])}" for key in by)  # type: ignore[index]


def shown_value(value: object) -> str:
    """A key's value for tables and messages: `—` when unset."""
    normalised = _normalised(value)
    return "—" if normalised is None else normalised
