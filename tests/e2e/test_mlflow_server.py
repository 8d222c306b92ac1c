"""Tracking through a real `mlflow server` on loopback: train logs there, eval fetches the checkpoint from it."""

from __future__ import annotations

import re

import mlflow
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory, mlflow_server):
    """An MLflow tracking server with its own SQLite store and artifact folder, stopped after the module."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(f"sqlite:///{folder / 'store.db'}", folder) as uri:
        yield uri


def test_train_and_eval_through_a_tracking_server_agree(twinids_cli, server_uri):
    tiny = ["experiment=smoke", "data.source.n_steps=900", "model.module.net.hidden_size=16"]
    trained = twinids_cli("train", "--tracking-uri", server_uri, *tiny)
    assert trained.returncode == 0, trained.stderr
    run_id = re.search(r"run id: ([0-9a-f]{32})", trained.stdout).group(1)
    evaluated = twinids_cli("eval", run_id, "--tracking-uri", server_uri)  # checkpoint comes over HTTP
    assert evaluated.returncode == 0, evaluated.stderr
    eval_id = re.search(r"run id: ([0-9a-f]{32})", evaluated.stdout).group(1)
    client = mlflow.tracking.MlflowClient(server_uri)
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    logged, reproduced = client.get_run(run_id).data.metrics, client.get_run(eval_id).data.metrics
    assert client.get_run(run_id).info.status == "FINISHED"
    for name in ("accuracy", "f1_macro", "auroc", "fpr"):
        assert reproduced[f"test/{name}"] == logged[f"test/{name}"]
