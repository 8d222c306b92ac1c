"""Tracking stores written with MLflow's client, shaped like `twinids train` runs, for the studies tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from twinids.bench.compare_store import write_synthetic_runs

RunLogger = Callable[..., str]
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch; a whole composed config logs about as many


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> str:
    """A SQLite store of 50 realistic training runs (4 models x 6 privacy settings x 2 datasets, seeds 0-1)."""
    database = tmp_path_factory.mktemp("synthetic-store") / "mlflow.db"
    write_synthetic_runs(f"sqlite:///{database}", 50)
    return f"sqlite:///{database}"


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    """An empty SQLite tracking store of the test's own."""
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


@pytest.fixture
def log_run(store_uri: str) -> RunLogger:
    """Log one finished run into `store_uri`'s `twinids` experiment; returns the run id.

    Call as `log_run(params={...}, metrics={...}, tags={...}, status="FINISHED", name=None)`; the tag
    `twinids.job=train` is added unless given.
    """
    client = MlflowClient(store_uri)

    def log(
        params: Mapping[str, object] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        status: str = "FINISHED",
        name: str | None = None,
        experiment: str = "twinids",
    ) -> str:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=name)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in {"twinids.job": "train", **(tags or {})}.items()],
        )
        logged = [Param(k, str(v)) for k, v in (params or {}).items()]
        for start in range(0, len(logged), PARAMS_PER_BATCH):
            client.log_batch(run.info.run_id, params=logged[start : start + PARAMS_PER_BATCH])
        client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    return log
