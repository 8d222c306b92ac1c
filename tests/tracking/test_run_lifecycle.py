"""A run ends FINISHED, FAILED or KILLED by how its block is left; a resumed run continues under the same id."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from twinids.tracking.run import start_run


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def status(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.status


def test_a_run_left_by_an_error_is_failed_and_by_ctrl_c_killed(uri):
    with pytest.raises(ValueError), start_run("life", uri) as failed:
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), start_run("life", uri) as killed:
        raise KeyboardInterrupt
    assert (status(uri, failed.run_id), status(uri, killed.run_id)) == ("FAILED", "KILLED")


def test_a_resumed_run_keeps_its_id_name_and_metrics_and_finishes(uri):
    with pytest.raises(KeyboardInterrupt), start_run("life", uri, run_name="long") as first:
        first.log_metrics({"train/loss": 1.0}, step=0)
        raise KeyboardInterrupt
    with start_run("life", uri, run_id=first.run_id) as resumed:
        assert status(uri, first.run_id) == "RUNNING"
        resumed.log_metrics({"train/loss": 0.5}, step=1)
    run = MlflowClient(uri).get_run(first.run_id)
    assert (resumed.run_id, run.info.run_name, run.info.status) == (first.run_id, "long", "FINISHED")
    history = MlflowClient(uri).get_metric_history(first.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]
