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


def add_to_finished_run(
    run_id: str, metrics: dict[str, float], params: dict[str, str], tracking_uri: str | None = None
) -> None:
    """Add metrics (step 0) and params to an existing run in one batch, leaving its status as it is (an audit of
    a training run adds what it found to that run, not a run of its own).

    Raises:
        TwinIDSError: if the store cannot be written, or a param already holds another value (MLflow params
            never change: the run was audited with other settings before).
    """
    import time

    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    uri = check_store(tracking_uri, writable=True)
    client = mlflow.tracking.MlflowClient(uri)
    logged = client.get_run(run_id).data.params
    changed = sorted(key for key, value in params.items() if key in logged and logged[key] != str(value))
    if changed:
        key = changed[0]
        raise TwinIDSError(
            f"run '{run_id}' already records {key}={logged[key]} (now {params[key]}): MLflow params never change; "
            "audit a fresh training run to record other settings"
        )
    now = int(time.time() * 1000)
    try:
        client.log_batch(
            run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
            params=[Param(key, str(value)) for key, value in params.items() if key not in logged],
        )
    except MlflowException as error:
        raise TwinIDSError(f"cannot add results to run '{run_id}' in {uri}: {str(error).splitlines()[0]}") from None
