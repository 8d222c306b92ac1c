"""Feature scaling and one-hot encoding, fitted on the training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twinids.errors import TwinIDSError

SCALERS = ("standard", "minmax", "none")


class FeatureEncoder:
    """Scales numeric columns and one-hot encodes categorical ones; categories unseen in training map to zeros.

    Args:
        scaler: `data.scaler`: "standard", "minmax" or "none" (numeric columns passed through).
    """

    def __init__(self, scaler: str) -> None:
        if scaler not in SCALERS:
            raise TwinIDSError(f"unknown data.scaler '{scaler}'; valid: {', '.join(SCALERS)}")
        self.scaler = scaler
        self._transformer = None
        self.feature_names: list[str] = []

    def fit(self, train_rows: pd.DataFrame) -> FeatureEncoder:
        """Learn scales and categories from the training rows (never from validation or test rows)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

        numeric = [c for c in train_rows.columns if _is_numeric(train_rows[c])]
        categorical = [c for c in train_rows.columns if c not in numeric]
        scale = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "none": "passthrough"}[self.scaler]
        self._transformer = ColumnTransformer(
            [
                ("numeric", scale, numeric),
                ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            ],
            verbose_feature_names_out=False,
        )
        self._transformer.fit(_as_model_input(train_rows, categorical))
        self._categorical = categorical
        self.feature_names = [str(n) for n in self._transformer.get_feature_names_out()]
        return self

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        """Encoded float32 matrix (rows x encoded features)."""
        if self._transformer is None:
            raise RuntimeError("FeatureEncoder.transform called before fit")
        encoded = self._transformer.transform(_as_model_input(rows, self._categorical))
        return np.ascontiguousarray(encoded, dtype=np.float32)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _as_model_input(rows: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    if not categorical:
        return rows
    rows = rows.copy()
    rows[categorical] = rows[categorical].astype(str).astype(object)
    return rows
