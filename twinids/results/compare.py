"""Aggregate tracked runs over seeds: mean, std and count per group of repeats, labelled by config keys.

Only repeats are averaged: runs whose settings differ in their seeds alone (equal `twinids.repeat_hash`,
recomputed from the params of runs logged without it). `by` chooses the config keys that label the rows; runs
sharing a label that are not repeats of one another get a row each, whose `differs` names the settings that
set it apart (`transfer.name=finetune`), never a silent mean. A config key is written as in overrides
(`model.name`) and read from the run's flattened param (`model/name`); a name that is no param but a tag
(`twinids.dataset`) is read from the tag. Rows whose runs differ in code version are marked; rows whose runs
differ in data fingerprint are refused unless `mix_data` is set.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twinids.errors import TwinIDSError
from twinids.tracking.config_hash import (
    REPEAT_HASH_TAG,
    RESULT_NEUTRAL_KEYS,
    UNSET_VALUES,
    is_seed_key,
    repeat_hash_of_params,
    repeat_settings,
)
from twinids.tracking.provenance import CODE_VERSION_TAG, DATA_FINGERPRINT_TAG

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_METRICS = ("test/f1_macro", "test/accuracy", "test/auroc", "test/fpr")
LEADING_KEYS = ("model.name", "data.name")  # always shown first when the runs have them
PREFERRED_KEYS = ("privacy.name", "privacy.target_epsilon")  # tried first when choosing the other keys
CODE_MARK, DATA_MARK = "†", "‡"
GENERATED_DATA_PREFIX = "config-"  # a data fingerprint of generated data (see provenance.data_fingerprint)


@dataclass(frozen=True)
class Comparison:
    """One row per group of repeats: the key values, `differs`, `runs`, `<metric> mean|std|n` per metric,
    marks, notes and `run_ids`.

    `differs` is "" unless runs with the row's key values are not all repeats: then it names the settings in
    which this row's runs differ from the other rows of the same key values. `marks` holds the footnote symbols
    of a row ("" when its runs agree), `provenance` the note in words, `run_ids` the runs averaged.
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
    """Group `runs` (from `load_runs`) into repeats labelled by config keys and aggregate each metric over them.

    Args:
        runs: one row per run, with `params.*`, `metrics.*` and `tags.*` columns.
        by: config keys that label the rows; default: model and dataset, then each key that varies across the
            runs and splits the groups further (seeds and settings that never change a result excepted).
        metrics: metric names; default: those of DEFAULT_METRICS the runs logged.
        mix_data: aggregate repeats made from different data (differing `twinids.data_fingerprint`) anyway.

    Raises:
        TwinIDSError: for an unknown key or metric, or repeats made from different data.
    """
    import pandas as pd

    by = list(by) if by else default_keys(runs)
    columns = [key_column(runs, key) for key in by]
    metrics = resolve_metrics(runs, metrics)
    values = [[_normalised(v) for v in runs[column]] for column in columns]
    repeats = repeat_hashes(runs)
    groups: dict[tuple, dict[str, list[int]]] = {}
    for index, (label, repeat) in enumerate(zip(zip(*values, strict=True), repeats, strict=True)):
        groups.setdefault(label, {}).setdefault(repeat, []).append(index)
    rows = []
    numeric = [all(_is_number(v) for v in column if v is not None) for column in values]
    for label in sorted(groups, key=lambda lbl: _sort_key(lbl, numeric)):
        differences = _differences(runs, groups[label])
        for repeat in sorted(groups[label], key=lambda r: differences[r]):
            members = runs.iloc[groups[label][repeat]]
            row: dict[str, object] = dict(zip(by, label, strict=True))
            row["differs"] = differences[repeat]
            row["runs"] = len(members)
            for metric in metrics:
                scores = members[f"metrics.{metric}"].dropna().to_numpy(dtype=float)
                row[f"{metric} mean"] = float(scores.mean()) if len(scores) else math.nan
                row[f"{metric} std"] = float(scores.std(ddof=1)) if len(scores) > 1 else math.nan
                row[f"{metric} n"] = len(scores)
            row["marks"], row["provenance"] = _provenance(members, by, row, mix_data)
            row["run_ids"] = sorted(members["run_id"]) if "run_id" in members.columns else []
            rows.append(row)
    return Comparison(table=pd.DataFrame(rows), by=by, metrics=metrics, n_runs=len(runs))


def repeat_hashes(runs: pd.DataFrame) -> list[str]:
    """Each run's `twinids.repeat_hash` tag, or for a run logged without it, the hash of its params."""
    column = f"tags.{REPEAT_HASH_TAG}"
    tagged = list(runs[column]) if column in runs.columns else [None] * len(runs)
    missing = [index for index, value in enumerate(tagged) if _normalised(value) is None]
    if missing:
        params = _params(runs.iloc[missing])
        for index, run_params in zip(missing, params, strict=True):
            tagged[index] = repeat_hash_of_params(run_params)
    return [str(value) for value in tagged]


def _params(runs: pd.DataFrame) -> list[dict[str, object]]:
    """Each run's logged params (`model/name` -> value), unset ones left out."""
    columns = [c for c in runs.columns if c.startswith("params.")]
    table = runs[columns].rename(columns=lambda c: c.removeprefix("params."))
    return [{k: v for k, v in record.items() if _normalised(v) is not None} for record in table.to_dict("records")]


def _differences(runs: pd.DataFrame, repeats: dict[str, list[int]]) -> dict[str, str]:
    """For groups of repeats sharing one label, what sets each apart: `key=value, ...` ("" for a lone group).

    The keys are the settings whose values are not the same in every group. Where no logged setting differs
    (values cut to MLflow's length limit, or a tag computed from more than the params show), the repeat hash
    itself is named, so that no two rows of one label look alike.
    """
    if len(repeats) == 1:
        return dict.fromkeys(repeats, "")
    order = [index for indices in repeats.values() for index in indices]
    settings_of = dict(zip(order, map(repeat_settings, _params(runs.iloc[order])), strict=True))
    settings = {repeat: [settings_of[index] for index in indices] for repeat, indices in repeats.items()}
    keys = sorted({key for group in settings.values() for run in group for key in run})
    values = {
        repeat: {key: " | ".join(sorted({run.get(key, "—") for run in group})) for key in keys}
        for repeat, group in settings.items()
    }
    differing = [key for key in keys if len({values[repeat][key] for repeat in repeats}) > 1]
    if not differing:
        return {repeat: f"{REPEAT_HASH_TAG}={repeat}" for repeat in repeats}
    return {repeat: ", ".join(f"{key}={values[repeat][key]}" for key in differing) for repeat in repeats}


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
    if is_seed_key(key):
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
    return None if text in UNSET_VALUES else text


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


def _provenance(members: pd.DataFrame, by: list[str], row: dict[str, object], mix_data: bool) -> tuple[str, str]:
    """(marks, note) for repeats that differ in code version (†) or, allowed by `mix_data`, data (‡).

    Fingerprints of generated data that differ within one row are no data difference: the generator's settings
    are part of the repeat hash, so only the seed can set them apart, as in runs logged before the fingerprint
    kept the seed out.
    """
    marks, notes = "", []
    data = _counts(members, DATA_FINGERPRINT_TAG)
    if len(data) > 1 and not all(fingerprint.startswith(GENERATED_DATA_PREFIX) for fingerprint in data):
        if not mix_data:
            raise TwinIDSError(
                f"the runs of {row_label(by, row)} were made from different data "
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
    """`model.name=lstm, data.name=nsl_kdd` for a row (a dict or a table row), and what it differs in, if anything."""
    label = ", ".join(f"{key}={shown_value(row[key])}" for key in by)  # type: ignore[index]
    differs = row.get("differs") if hasattr(row, "get") else None  # type: ignore[union-attr]
    return f"{label} (differs: {differs})" if differs else label


def shown_value(value: object) -> str:
    """A key's value for tables and messages: `—` when unset."""
    normalised = _normalised(value)
    return "—" if normalised is None else normalised
