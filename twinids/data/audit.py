"""Leakage audit of a frame: how well each feature, or its text formatting, alone predicts the label;
constant columns; rows shared between train and test; class balance per split."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format
from sklearn.metrics import f1_score
from sklearn.tree import DecisionTreeClassifier

from twinids.data.frame import SPLIT, feature_columns
from twinids.data.sources import batadal, nsl_kdd, ton_iot, unsw_nb15
from twinids.data.sources.tabular import per_unique, stratified_split
from twinids.errors import TwinIDSError

RAW_READERS: dict[str, Callable[[str], pd.DataFrame]] = {
    "ton_iot": ton_iot.raw,
    "batadal": batadal.raw,
    "nsl_kdd": nsl_kdd.raw,
    "unsw_nb15": unsw_nb15.raw,
}
_LETTERS = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "a" * 26 + "A" * 26 + "9" * 10
)
_RUNS = tuple((re.compile(f"{token}+"), token) for token in "aA9")
DATE_FORMATS = ("%d-%b-%y", "%d-%b-%Y", "%H:%M:%S", "%d/%m/%y %H", "%d/%m/%Y", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class FeatureScore:
    """How well one feature (or the text format of one column) alone predicts the label."""

    feature: str
    kind: str  # numeric | numeric text | time text | categorical | format
    macro_f1: float
    distinct: int


@dataclass
class AuditReport:
    """Per-feature scores and findings; `passed` is False when one feature alone nearly separates the
    classes (macro-F1 >= threshold): a leak until proven otherwise."""

    scores: list[FeatureScore]
    constant: list[str]
    shared_duplicates: int
    test_rows: int
    class_balance: pd.DataFrame
    split_used: str
    threshold: float
    findings: list[str] = field(default_factory=list)

    @property
    def leaks(self) -> list[FeatureScore]:
        """Scores at or above the threshold, best first."""
        return [s for s in self.scores if s.macro_f1 >= self.threshold]

    @property
    def passed(self) -> bool:
        """True when no single feature or formatting trace separates the classes."""
        return not self.leaks

    def to_frame(self) -> pd.DataFrame:
        """The per-feature scores as a table, best first."""
        return pd.DataFrame([vars(s) for s in self.scores], columns=["feature", "kind", "macro_f1", "distinct"])


def _shape(value: object) -> str:
    """The format of a text cell: letter runs -> a/A, digit runs -> 9, spaces and punctuation kept."""
    text = str(value).translate(_LETTERS)
    for pattern, token in _RUNS:
        text = pattern.sub(token, text)
    return text


def _as_values(column: pd.Series) -> tuple[str, pd.Series]:
    """A column as something a one-feature tree can split: numbers as they are, number or date-time
    text parsed (work done once per distinct value), any other text stripped and kept as categories."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return "numeric", column.astype(np.float64)
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    text = pd.Series([str(v).strip() for v in np.asarray(uniques, dtype=object)], dtype=object)
    kind, parsed = "numeric text", pd.to_numeric(text, errors="coerce")
    if parsed.isna().any():
        kind, parsed = "time text", _seconds(text)
    if parsed is None or parsed.isna().any():
        kind, parsed = "categorical", text
    return kind, pd.Series(parsed.to_numpy()[codes], index=column.index)


def _seconds(text: pd.Series) -> pd.Series | None:
    """Date-time text in one known or inferable format as seconds since the epoch; None when it is not."""
    guessed = guess_datetime_format(text.iloc[0]) if len(text) else None
    for format_ in (*DATE_FORMATS, *([guessed] if guessed else [])):
        stamps = pd.to_datetime(text, format=format_, errors="coerce")
        if stamps.notna().all():
            return (stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    return None


def _score(values: pd.Series, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Macro-F1 on the test rows of a depth-2 tree fitted on the train rows of one feature; categories
    are coded by their attack rate in train (unseen ones -1), so the tree can group them."""
    if not pd.api.types.is_numeric_dtype(values):
        rate = pd.Series(labels[train]).groupby(values[train].to_numpy()).mean()
        codes = rate.rank(method="dense")
        values = pd.Series(per_unique(values, lambda v: codes.get(v, -1.0)), index=values.index).astype(float)
    x = values.to_numpy(dtype=np.float64)[:, None]
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x[train], labels[train])
    return float(f1_score(labels[test], tree.predict(x[test]), average="macro", labels=[0, 1], zero_division=0))


def _parts(
    frame: pd.DataFrame, labels: np.ndarray, split_column: str | None, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Train mask, test mask, each row's part name, and how they were chosen: the split column (train
    -> test, or train+val -> test when train holds one class), else a seeded stratified split."""
    column = split_column or (SPLIT if SPLIT in frame.columns else None)
    if column is not None:
        split = frame[column].astype(str).to_numpy()
        test = split == "test" if (split == "test").any() else split == "val"
        for fitted in (("train",), ("train", "val")):
            train = np.isin(split, fitted)
            if len(set(labels[train])) == 2 and len(set(labels[test])) == 2:
                return train, test, split, f"column '{column}', fitted on {'+'.join(fitted)}"
    part = stratified_split(labels, 0.0, test_fraction, seed)
    reason = f"seeded stratified {1 - test_fraction:.0%}/{test_fraction:.0%}"
    if column is not None:
        reason += f" (column '{column}' has no split with both classes to fit on)"
    return part == "train", part == "test", part, reason


def audit_frame(
    frame: pd.DataFrame,
    label_column: str = "label",
    split_column: str | None = None,
    features: Sequence[str] | None = None,
    threshold: float = 0.98,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> AuditReport:
    """Audit a frame (tidy, or raw with label/attack columns) for label leaks.

    Args:
        frame: the rows; `label_column` holds 0/1.
        split_column: train/val/test column; default `split` when present, else a seeded stratified split.
        features: columns to audit; default every column that is not a reserved tidy-frame name.
        threshold: macro-F1 at or above which one feature alone counts as a leak.

    Returns:
        AuditReport with per-feature scores (value, and format for text columns) and findings.
    """
    if label_column not in frame.columns:
        raise TwinIDSError(f"audit: no label column '{label_column}'; have {list(frame.columns)[:12]}")
    frame = frame.reset_index(drop=True)
    labels = frame[label_column].to_numpy().astype(np.int64)
    train, test, part, split_used = _parts(frame, labels, split_column, test_fraction, seed)
    names = [c for c in (features or feature_columns(frame)) if c not in (label_column, split_column)]
    scores = []
    for name in names:
        column = frame[name]
        present = column.notna().to_numpy()
        kind, values = _as_values(column[present])
        candidates = [(name, kind, values)]
        if not pd.api.types.is_numeric_dtype(column):
            shapes = pd.Series(per_unique(column[present], _shape), index=values.index)
            if shapes.nunique() > 1:
                candidates.append((f"format({name})", "format", shapes))
        for feature, feature_kind, feature_values in candidates:
            if (train & present).any() and (test & present).any():
                f1 = _score(feature_values, labels[present], train[present], test[present])
                scores.append(FeatureScore(feature, feature_kind, round(f1, 4), int(feature_values.nunique())))
    scores.sort(key=lambda s: -s.macro_f1)
    constant = [c for c in names if frame[c].nunique(dropna=False) <= 1]
    hashes = pd.util.hash_pandas_object(frame[[*names, label_column]], index=False).to_numpy()
    shared = int(np.isin(hashes[test], hashes[train]).sum())
    balance = pd.crosstab(pd.Series(part, name="split"), pd.Series(labels, name="label"))
    report = AuditReport(scores, constant, shared, int(test.sum()), balance, split_used, threshold)
    report.findings = _findings(report)
    return report


def _findings(report: AuditReport) -> list[str]:
    """One line per finding, leaks first."""
    lines = [
        f"LEAK: {s.feature} ({s.kind}) alone separates the classes: macro-F1 {s.macro_f1:.3f} >= {report.threshold}"
        for s in report.leaks
    ]
    if report.constant:
        lines.append(f"constant columns (no information, zero variance): {report.constant}")
    share = report.shared_duplicates / max(report.test_rows, 1)
    lines.append(f"{report.shared_duplicates} of {report.test_rows} test rows ({share:.1%}) repeat a train row")
    for part, counts in report.class_balance.iterrows():
        lines.append(f"{part}: " + ", ".join(f"label {k}: {v}" for k, v in counts.items()))
    lines.append(f"split used: {report.split_used}")
    return lines


def raw_frame(name: str, root: str) -> pd.DataFrame:
    """A dataset's files as published (text cells unstripped, time columns kept), for `audit --raw`."""
    if name not in RAW_READERS:
        raise TwinIDSError(f"audit: no raw reader for dataset '{name}'; available: {sorted(RAW_READERS)}")
    return RAW_READERS[name](root)
