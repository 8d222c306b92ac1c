"""Read back what a tracked run stored: its checkpoint and its config."""

from __future__ import annotations

from pathlib import Path

from twinids.errors import TwinIDSError
from twinids.tracking.run import CHECKPOINT_ARTIFACT_DIR
from twinids.tracking.store import check_store, sqlite_database


def download_checkpoint(run_id: str, destination: Path, tracking_uri: str | None = None) -> Path:
    """Fetch the best checkpoint a training run logged.

    Raises:
        TwinIDSError: if the store cannot be read, or the run or its checkpoint is missing.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = check_store(tracking_uri, writable=False)
    database = sqlite_database(uri)
    if database is not None and not database.exists():  # asking MLflow would create an empty store as a side effect
        raise TwinIDSError(
            f"no run '{run_id}': there is no tracking store at {database} yet; pass a training run id of an "
            "existing store (MLFLOW_TRACKING_URI / tracking.uri) or a .ckpt path"
        )
    try:
        mlflow.tracking.MlflowClient(uri).get_run(run_id)
        folder = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=CHECKPOINT_ARTIFACT_DIR, dst_path=str(destination), tracking_uri=uri
        )
    except MlflowException as error:
        raise TwinIDSError(
            f"no run '{run_id}' with a checkpoint in the tracking store {uri}; pass a training run id "
            "(see `mlflow ui`) or a .ckpt path"
        ) from error
    # A training run logs the one checkpoint it tested; its detector chose the format (and so the suffix).
    checkpoints = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.endswith(".partial"))
    if not checkpoints:
        raise TwinIDSError(f"run '{run_id}' logged no checkpoint; only training runs can be evaluated")
    return checkpoints[0]
