"""Tracking through a real `mlflow server` on loopback: train logs there, eval fetches the checkpoint from it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    """An MLflow tracking server with its own SQLite store and artifact folder, stopped after the module."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    executable = Path(sys.executable).with_name("mlflow")
    command = [
        str(executable),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'store.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


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
