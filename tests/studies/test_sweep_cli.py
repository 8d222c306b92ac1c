"""`twinids sweep` as a real command: parallel worker processes, a stop by SIGTERM, and the re-run that follows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

SMOKE = ["experiment=smoke", "data.source.n_steps=900", "model.module.net.hidden_size=8"]


def runs_by_job(workdir: Path) -> tuple[list, list]:
    """(parent runs, child runs) of workdir's store."""
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("twinids").experiment_id
    parents = client.search_runs([experiment], "tags.`twinids.job` = 'sweep'")
    return parents, client.search_runs([experiment], "tags.`twinids.job` = 'train'")


@pytest.mark.slow
def test_two_parallel_jobs_on_a_new_store_lose_no_run(twinids_cli, tmp_path):
    done = twinids_cli("sweep", "--jobs", "2", *SMOKE, "seed=1,3", "model.module.optimizer.lr=0.001,0.003")
    assert done.returncode == 0, done.stderr
    assert "4 jobs: 4 finished, 0 failed, 0 skipped" in done.stdout
    parents, children = runs_by_job(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4 and {run.info.status for run in children} == {"FINISHED"}
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parents[0].info.run_id}
    assert len({run.data.tags["twinids.config_hash"] for run in children}) == 4


@pytest.mark.slow
def test_sigterm_ends_the_running_child_and_the_parent_killed_and_a_rerun_runs_only_the_missing_jobs(tmp_path):
    sweep = [*SMOKE, "trainer.max_epochs=6", "callbacks.early_stopping.patience=10", "seed=1,3,1001"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"}
    env["PYTHONUNBUFFERED"] = "1"
    command = [str(Path(sys.executable).with_name("twinids")), "sweep", *sweep]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, text=True, **pipes)
    try:
        first_line = process.stdout.readline()  # job 1 has ended
        deadline = time.monotonic() + 120
        while len(list((tmp_path / "outputs").glob("*/checkpoints/*.ckpt"))) < 3:  # job 1: best+last; job 2: one
            assert time.monotonic() < deadline, "job 2 never wrote a checkpoint"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert "FINISHED" in first_line, first_line
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err
    parents, children = runs_by_job(tmp_path)
    assert [run.info.status for run in parents] == ["KILLED"]
    assert sorted(run.info.status for run in children) == ["FINISHED", "KILLED"]
    killed_line = next(line for line in out.splitlines() if "KILLED" in line)
    assert killed_line.split()[0] == "2"

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "3 jobs: 2 finished, 0 failed, 1 skipped" in rerun.stdout
    parents, children = runs_by_job(tmp_path)
    assert [run.info.status for run in parents] == ["FINISHED"]  # the same parent, continued
    assert sorted(run.info.status for run in children) == ["FINISHED", "FINISHED", "FINISHED", "KILLED"]


def test_a_sweep_override_that_matches_no_option_is_one_line_and_exit_2(twinids_cli):
    done = twinids_cli("sweep", "model=glob(nothing*)")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: 'model=glob(nothing*)' matches no option of config group 'model'; options: ")
    assert "lstm, " in line
