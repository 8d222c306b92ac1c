"""Feature scaling and one-hot encoding, fitted on the training rows only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from twinids.errors import TwinIDSError

SCALERS = ("standard", "minmax", "none")
# Rows fitted and encoded at a time: scikit-learn's scalers make float64 temporaries about 2.3x their input
# (and ColumnTransformer a second copy of its output), so whole-array calls would double the pipeline's peak.
CHUNK_ROWS = 65_536


class FeatureEncoder:
    """Scales numeric columns and one-hot encodes categorical ones; categories unseen in training map to zeros.

    Works through the rows in blocks of `CHUNK_ROWS` and writes into one float32 output, so that its memory
    beyond that output stays a few MB whatever the number of rows.

    Args:
        scaler: `data.scaler`: "standard", "minmax" or "none" (numeric columns passed through).
    """

    def __init__(self, scaler: str) -> None:
        if scaler not in SCALERS:
            raise TwinIDSError(f"unknown data.scaler '{scaler}'; valid: {', '.join(SCALERS)}")
        self.scaler = scaler
        self._scale = None
        self._one_hot = None
        self._numeric: list[str] = []
        self._categorical: list[str] = []
        self.feature_names: list[str] = []

    def fit(self, train_rows: pd.DataFrame) -> FeatureEncoder:
        """Learn scales and categories from the training rows (never from validation or test rows)."""
        from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

        self._numeric = [c for c in train_rows.columns if _is_numeric(train_rows[c])]
        self._categorical = [c for c in train_rows.columns if c not in self._numeric]
        self._scale = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "none": None}[self.scaler]
        if self._scale is not None and self._numeric:
            numeric = train_rows[self._numeric]
            for start in range(0, len(numeric), CHUNK_ROWS):
                self._scale.partial_fit(numeric.iloc[start : start + CHUNK_ROWS])
        self._one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        if self._categorical:
            self._one_hot.fit(_as_strings(train_rows[self._categorical]))
            one_hot_names = [str(n) for n in self._one_hot.get_feature_names_out()]
        else:
            one_hot_names = []
        self.feature_names = [str(c) for c in self._numeric] + one_hot_names
        return self

    def decoding(self) -> tuple[np.ndarray, np.ndarray]:
        """Per encoded feature (offset, scale) with raw = offset + scale * encoded (one-hot columns: 0 and 1).

        What turns an encoded reading back into the plant's units, e.g. for a twin that recomputes its columns
        from readings an attacker rewrote in encoded units.
        """
        if self._one_hot is None:
            raise RuntimeError("FeatureEncoder.decoding called before fit")
        offset, scale = np.zeros(len(self.feature_names)), np.ones(len(self.feature_names))
        width = len(self._numeric)
        if self.scaler == "standard" and width:
            offset[:width], scale[:width] = self._scale.mean_, self._scale.scale_
        elif self.scaler == "minmax" and width:
            scale[:width] = 1.0 / self._scale.scale_
            offset[:width] = -self._scale.min_ * scale[:width]
        return offset, scale

    @property
    def columns(self) -> list[str]:
        """The frame columns it encodes (numeric ones first, as in `feature_names`)."""
        return [*self._numeric, *self._categorical]

    def encode_record(self, record: Mapping[str, Any]) -> np.ndarray:
        """One reading (column -> raw value) as its encoded float32 row, equal to `transform` of that row.

        For streams: no DataFrame per reading. Raises KeyError for a column the record lacks.
        """
        if self._one_hot is None:
            raise RuntimeError("FeatureEncoder.encode_record called before fit")
        numeric = np.array([float(record[column]) for column in self._numeric], dtype=np.float64)
        if self.scaler == "standard" and self._numeric:
            numeric = (numeric - self._scale.mean_) / self._scale.scale_
        elif self.scaler == "minmax" and self._numeric:
            numeric = numeric * self._scale.scale_ + self._scale.min_
        parts = [numeric]
        for column, categories in zip(self._categorical, getattr(self._one_hot, "categories_", []), strict=False):
            parts.append((categories == str(record[column])).astype(np.float64))
        return np.concatenate(parts).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """What `encode_record` reads, as JSON types: a fitted encoder exported beside a model (no pickle).

        Floats are written as Python floats, which JSON round-trips exactly, so `from_state(state())` encodes a
        record to the same bits.
        """
        if self._one_hot is None:
            raise RuntimeError("FeatureEncoder.state called before fit")
        statistics: dict[str, list[float]] = {}
        if self.scaler == "standard" and self._numeric:
            statistics = {"mean": self._scale.mean_.tolist(), "scale": self._scale.scale_.tolist()}
        elif self.scaler == "minmax" and self._numeric:
            statistics = {"scale": self._scale.scale_.tolist(), "min": self._scale.min_.tolist()}
        categories = [[str(c) for c in found] for found in getattr(self._one_hot, "categories_", [])]
        return {
            "scaler": self.scaler,
            "numeric": [str(c) for c in self._numeric],
            "categorical": [str(c) for c in self._categorical],
            "categories": categories if self._categorical else [],
            "statistics": statistics,
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureEncoder:
        """An encoder that encodes records as the one `state()` came from did (`encode_record`, `columns`).

        Raises:
            TwinIDSError: when the state lacks a key or its lists disagree in length.
        """
        try:
            encoder = cls(str(state["scaler"]))
            encoder._numeric = [str(c) for c in state["numeric"]]
            encoder._categorical = [str(c) for c in state["categorical"]]
            categories = [np.array([str(c) for c in found], dtype=object) for found in state["categories"]]
            statistics = {key: np.asarray(values, dtype=np.float64) for key, values in state["statistics"].items()}
            encoder.feature_names = [str(name) for name in state["feature_names"]]
        except (KeyError, TypeError, AttributeError) as error:
            raise TwinIDSError(f"the encoder state lacks or mangles {error}; export the run again") from None
        needed = {"standard": ("mean", "scale"), "minmax": ("scale", "min"), "none": ()}[encoder.scaler]
        width = len(encoder._numeric)
        if any(len(statistics.get(key, ())) != width for key in needed if width) or len(categories) != len(
            encoder._categorical
        ):
            raise TwinIDSError("the encoder state's statistics or categories do not match its columns")
        if width + sum(len(found) for found in categories) != len(encoder.feature_names):
            raise TwinIDSError("the encoder state's feature names do not match its columns and categories")
        encoder._scale = _FittedStatistics(statistics) if needed and width else None
        encoder._one_hot = _FittedCategories(categories)
        return encoder

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        """Encoded float32 matrix (rows x encoded features)."""
        if self._one_hot is None:
            raise RuntimeError("FeatureEncoder.transform called before fit")
        if isinstance(self._one_hot, _FittedCategories):
            raise RuntimeError("a FeatureEncoder restored from its state encodes records only (encode_record)")
        encoded = np.empty((len(rows), len(self.feature_names)), dtype=np.float32)
        width = len(self._numeric)
        numeric, categorical = rows[self._numeric], rows[self._categorical]
        for start in range(0, len(rows), CHUNK_ROWS):
            block = slice(start, start + CHUNK_ROWS)
            if width:
                values = numeric.iloc[block]
                encoded[block, :width] = values if self._scale is None else self._scale.transform(values)
            if self._categorical:
                encoded[block, width:] = self._one_hot.transform(_as_strings(categorical.iloc[block]))
        return encoded


class _FittedStatistics:
    """A fitted scaler's statistics under scikit-learn's attribute names, as `encode_record` reads them."""

    def __init__(self, statistics: Mapping[str, np.ndarray]) -> None:
        self.mean_ = statistics.get("mean")
        self.scale_ = statistics.get("scale")
        self.min_ = statistics.get("min")


class _FittedCategories:
    """A fitted one-hot encoder's categories, as `encode_record` reads them."""

    def __init__(self, categories: list[np.ndarray]) -> None:
        self.categories_ = categories


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _as_strings(rows: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as Python strings (one type per column, as OneHotEncoder needs)."""
    return rows.astype(str).astype(object)
