"""Every signal that ends a command ends its MLflow run KILLED with one line and exit 128 + signal;
a killed DP run resumed with `--resume` spends exactly the ε of an uninterrupted one."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import mlflow
import pytest
import torch
from opacus.accountants import create_accountant

pytestmark = pytest.mark.slow

SMALL = [
    "data.source.n_steps=900",
    "model.module.net.hidden_size=8",
    "model.module.net.num_layers=1",
    "trainer.enable_progress_bar=false",
]


def start(workdir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"}
    command = [str(Path(sys.executable).with_name("twinids")), *args]
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the command ended early: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.3)


def client(workdir: Path) -> mlflow.tracking.MlflowClient:
    return mlflow.tracking.MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


def runs(workdir: Path) -> list:
    if not (workdir / "mlruns" / "mlflow.db").exists():
        return []
    experiment = client(workdir).get_experiment_by_name("twinids")
    return [] if experiment is None else client(workdir).search_runs([experiment.experiment_id])


def stop(process: subprocess.Popen, signum: int) -> str:
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr and "interrupted" in lines[0], stderr
    return lines[0]


def run_statuses_read_only(workdir: Path) -> list[str]:
    """The runs' statuses read straight from SQLite: an MLflow client opened while the command is still
    creating the store would run the schema migration a second time and break that command."""
    database = workdir / "mlruns" / "mlflow.db"
    if not database.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
            return [status for (status,) in connection.execute("SELECT status FROM runs")]
    except sqlite3.OperationalError:  # tables not created yet
        return []


def checkpoint_written(workdir: Path, name: str = "last.ckpt"):
    return lambda: bool(list(workdir.glob(f"outputs/*/checkpoints/{name}")))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_lstm_training_ends_the_run_killed(tmp_path, signum):
    process = start(tmp_path, "train", *SMALL, "trainer.max_epochs=500", "callbacks.early_stopping.patience=500")
    wait_for(checkpoint_written(tmp_path), process)
    assert signal.Signals(signum).name in stop(process, signum)
    assert [r.info.status for r in runs(tmp_path)] == ["KILLED"]


def test_sigterm_during_random_forest_training_ends_the_run_killed(tmp_path):
    process = start(
        tmp_path, "train", "data.source.n_steps=3000", "model=random_forest", "model.estimator.n_estimators=5000"
    )
    wait_for(lambda: "RUNNING" in run_statuses_read_only(tmp_path), process)
    time.sleep(1.0)  # inside the forest's fit
    stop(process, signal.SIGTERM)
    assert [r.info.status for r in runs(tmp_path)] == ["KILLED"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_final_test_phase_of_train_ends_the_run_killed(tmp_path, signum):
    # Two short epochs, then a test phase made long with one window per batch.
    process = start(
        tmp_path,
        "train",
        *SMALL,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",
        "data.eval_batch_size=1",
        "data.source.n_steps=6000",
    )
    wait_for(checkpoint_written(tmp_path, "best.ckpt"), process)
    time.sleep(2.0)
    stop(process, signum)
    assert [r.info.status for r in runs(tmp_path)] == ["KILLED"]


def test_sigterm_during_the_test_phase_of_eval_ends_the_eval_run_killed(tmp_path):
    trained = start(tmp_path, "train", *SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=2")
    stdout, stderr = trained.communicate(timeout=300)
    assert trained.returncode == 0, stderr
    run_id = re.search(r"run id: ([0-9a-f]{32})", stdout).group(1)
    process = start(tmp_path, "eval", run_id, "data.eval_batch_size=1", "data.source.n_steps=6000")
    wait_for(lambda: len(run_statuses_read_only(tmp_path)) == 2, process)
    time.sleep(2.0)
    stop(process, signal.SIGTERM)
    statuses = {r.data.tags["twinids.job"]: r.info.status for r in runs(tmp_path)}
    assert statuses == {"train": "FINISHED", "eval": "KILLED"}


def test_a_killed_dp_run_resumed_spends_the_epsilon_of_an_uninterrupted_one(tmp_path):
    dp = [
        *SMALL,
        "privacy=dp",
        "privacy.target_epsilon=3",
        "trainer.max_epochs=4",
        "seed=5",
    ]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir()
    killed.mkdir()
    uninterrupted = start(whole, "train", *dp)  # runs beside the killed-and-resumed one
    process = start(killed, "train", *dp)
    wait_for(checkpoint_written(killed), process)
    stop(process, signal.SIGTERM)
    killed_at_ms = time.time() * 1000
    [checkpoint] = killed.glob("outputs/*/checkpoints/last.ckpt")
    steps_in_checkpoint = torch.load(checkpoint, weights_only=True)["global_step"]
    [run] = runs(killed)
    assert run.info.status == "KILLED"
    resumed = start(killed, "train", "--resume", run.info.run_id)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    [run] = runs(killed)  # the same MLflow run continued
    assert run.info.status == "FINISHED"
    spent = run.data.params
    assert int(spent["privacy.steps"]) == int(spent["privacy.planned_steps"])
    # Continued from the checkpoint, not restarted: every ε the resumed process logged is past its steps.
    history = client(killed).get_metric_history(run.info.run_id, "privacy/epsilon")
    assert min(m.step for m in history if m.timestamp > killed_at_ms) > steps_in_checkpoint

    _, stderr = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, stderr
    [whole_run] = runs(whole)
    assert abs(float(spent["privacy.epsilon"]) - float(whole_run.data.params["privacy.epsilon"])) < 1e-6
    # Both are the run's accountant's ε for the planned steps at one σ and one sampling rate.
    accountant = create_accountant(spent["privacy.accountant"])
    accountant.history = [
        (
            float(spent["privacy.noise_multiplier"]),
            float(spent["privacy.sample_rate"]),
            int(spent["privacy.planned_steps"]),
        )
    ]
    assert abs(float(spent["privacy.epsilon"]) - accountant.get_epsilon(float(spent["privacy.delta"]))) < 1e-9
    assert 2.85 <= float(spent["privacy.epsilon"]) <= 3.0


def test_a_signal_during_a_tuning_trial_ends_the_trial_and_its_parent_killed(tmp_path):
    # A stopped `twinids tune` once left its parent and its running trial RUNNING.
    search = tmp_path / "configs" / "search"
    search.mkdir(parents=True)
    (search / "tiny.yaml").write_text(
        "metric: val/f1_macro\nn_trials: 3\npruner: null\n"
        f"overrides: [{', '.join([*SMALL, 'trainer.max_epochs=500', 'callbacks.early_stopping.patience=500'])}]\n"
        "params:\n  model.module.optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
    )
    process = start(tmp_path, "tune", "tiny", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}")
    wait_for(checkpoint_written(tmp_path), process)
    assert "SIGTERM" in stop(process, signal.SIGTERM)
    statuses = {r.data.tags["twinids.job"]: r.info.status for r in runs(tmp_path)}
    assert statuses == {"tune": "KILLED", "train": "KILLED"}
