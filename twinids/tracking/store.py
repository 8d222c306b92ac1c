"""Where runs are tracked: $MLFLOW_TRACKING_URI or an explicit URI, else an embedded SQLite store."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORE_DIR = "mlruns"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: the given one, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        store = Path(DEFAULT_STORE_DIR).resolve()
        store.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{store / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{database.resolve()}"
    return uri


def artifact_root(tracking_uri: str) -> str | None:
    """Artifact folder for new experiments of a SQLite store (beside the database); None lets the server decide."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        return (database.parent / "artifacts").as_uri()
    return None
