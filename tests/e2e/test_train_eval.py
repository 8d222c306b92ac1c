"""End to end: the real `twinids train` and `twinids eval` processes on tiny settings, checked in MLflow."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow

TINY = [
    "data.source.n_steps=900",
    "data.window=10",
    "model.module.net.hidden_size=16",
    "model.module.net.num_layers=1",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "seed=7",
]
METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "auroc", "fpr")


def run_id_of(stdout: str) -> str:
    match = re.search(r"run id: ([0-9a-f]{32})", stdout)
    assert match, stdout
    return match.group(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli_runner_factory):
    """One tiny training run shared by the tests of this module: (cli runner, workdir, run id, result)."""
    workdir = tmp_path_factory.mktemp("e2e")
    cli = cli_runner_factory(workdir)
    result = cli("train", *TINY)
    assert result.returncode == 0, result.stderr
    return cli, workdir, run_id_of(result.stdout), result


def client_for(workdir: Path) -> mlflow.tracking.MlflowClient:
    return mlflow.tracking.MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


def test_train_prints_test_metrics_run_id_and_checkpoint(trained):
    _, _, _, result = trained
    for name in METRICS:
        assert f"test/{name}" in result.stdout
    checkpoint = re.search(r"checkpoint: (\S+\.ckpt)", result.stdout)
    assert checkpoint and Path(checkpoint.group(1)).is_file()


def test_train_logs_config_metrics_tags_checkpoint_and_confusion_matrix(trained):
    _, workdir, run_id, _ = trained
    run = client_for(workdir).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data/window"] == "10" and run.data.params["seed"] == "7"
    assert {f"test/{name}" for name in METRICS} <= set(run.data.metrics)
    assert {"val/f1_macro", "train/loss_epoch"} <= set(run.data.metrics)
    assert run.data.tags["twinids.dataset"] == "synthetic_twin" and run.data.tags["twinids.model"] == "lstm"
    artifacts = {a.path for a in client_for(workdir).list_artifacts(run_id, "config")}
    artifacts |= {a.path for a in client_for(workdir).list_artifacts(run_id, "checkpoints")}
    artifacts |= {a.path for a in client_for(workdir).list_artifacts(run_id, "test")}
    assert {
        "config/config.yaml",
        "config/overrides.txt",
        "checkpoints/best.ckpt",
        "test/confusion_matrix.png",
    } <= artifacts
    history = client_for(workdir).get_metric_history(run_id, "val/f1_macro")
    assert len(history) >= 1


def test_eval_of_a_run_reproduces_its_logged_test_metrics_exactly(trained):
    cli, workdir, run_id, _ = trained
    result = cli("eval", run_id)  # no overrides: the config stored with the run is used as it is
    assert result.returncode == 0, result.stderr
    client = client_for(workdir)
    trained_metrics = client.get_run(run_id).data.metrics
    eval_run = client.get_run(run_id_of(result.stdout))
    assert eval_run.data.tags["twinids.source_run_id"] == run_id
    assert eval_run.data.tags["twinids.job"] == "eval"
    for name in METRICS:
        assert eval_run.data.metrics[f"test/{name}"] == trained_metrics[f"test/{name}"], name


def test_eval_accepts_a_checkpoint_path_and_data_overrides(trained):
    cli, workdir, run_id, train_result = trained
    checkpoint = re.search(r"checkpoint: (\S+\.ckpt)", train_result.stdout).group(1)
    result = cli("eval", checkpoint, "data.source.seed=99", "trainer.enable_progress_bar=false")
    assert result.returncode == 0, result.stderr
    eval_run = client_for(workdir).get_run(run_id_of(result.stdout))
    assert eval_run.data.params["data/source/seed"] == "99"
    assert eval_run.data.tags["twinids.source_run_id"] == run_id
    assert eval_run.data.metrics["test/f1_macro"] != client_for(workdir).get_run(run_id).data.metrics["test/f1_macro"]


def test_a_run_that_crashes_during_training_ends_failed(trained):
    cli, workdir, _, _ = trained
    # a monitored metric that is never logged: Lightning fails after the first validation, inside the run
    result = cli("train", *TINY, "callbacks.early_stopping.monitor=val/never_logged", "run_name=crash")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    runs = client_for(workdir).search_runs(
        [client_for(workdir).get_experiment_by_name("twinids").experiment_id], "attributes.run_name = 'crash'"
    )
    assert [r.info.status for r in runs] == ["FAILED"]


def test_ctrl_c_during_training_ends_the_run_killed_with_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    store = tmp_path / "mlruns" / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    command = [
        str(Path(sys.executable).with_name("twinids")),
        "train",
        *TINY[:-2],
        "trainer.max_epochs=500",
        "callbacks.early_stopping.patience=500",
        "trainer.enable_progress_bar=false",
    ]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Wait for the first best checkpoint (one validation epoch done), watching files rather than the
    # SQLite store, so this test never holds a lock the training process needs.
    while time.monotonic() < deadline and not list(tmp_path.glob("outputs/*/checkpoints/*.ckpt")):
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    client = mlflow.tracking.MlflowClient(f"sqlite:///{store}")
    assert client.search_runs([client.get_experiment_by_name("twinids").experiment_id])[0].info.status == "KILLED"
