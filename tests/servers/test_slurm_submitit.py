"""`twinids sweep --launcher slurm` end to end through submitit, with stand-in SLURM commands that run jobs here.

The stand-ins (`slurm_standin.py`) really run the batch scripts submitit writes, `srun` line included, so what
submitit puts in them (python, folder, output files, SLURM variables it reads back) is exercised, not only set.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

STANDIN = Path(__file__).with_name("slurm_standin.py")
COMMANDS = ("sbatch", "srun", "sacct", "squeue", "scancel")


@pytest.fixture
def slurm_standin(tmp_path, monkeypatch) -> Iterator[Path]:
    """A bin folder of stand-in SLURM commands first on PATH; yields the folder holding the jobs' state, and
    cancels any job still running afterwards (a failed test leaves no job behind)."""
    bin_dir, state = tmp_path / "slurm-bin", tmp_path / "slurm-state"
    bin_dir.mkdir()
    state.mkdir()
    for name in COMMANDS:
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "{state}" {name} "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    yield state
    running = [path.stem for path in state.glob("*.state") if path.read_text().strip() in ("PENDING", "RUNNING")]
    if running:
        subprocess.run([str(bin_dir / "scancel"), *running], check=False)


def test_a_slurm_sweep_runs_the_batch_scripts_submitit_writes_and_tracks_to_the_server(
    slurm_standin, tracking_server, server_cli_factory, tmp_path
):
    workdir = tmp_path / "login-node"
    workdir.mkdir()
    twinids = server_cli_factory(workdir, tracking_server.url)
    overrides = ["experiment=smoke", "data.source.n_steps=900", "model.module.net.hidden_size=16", "seed=11,12"]
    swept = twinids(
        "sweep", "--launcher", "slurm", "--jobs", "2", "--cpus", "1", "--timeout-min", "5",
        "--tracking-uri", tracking_server.url, *overrides, "tracking.mlflow_experiment=slurm",
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr + swept.stdout
    parent_id = re.search(r"2 jobs: 2 finished, 0 failed, 0 skipped .*\(parent run ([0-9a-f]{32})\)", swept.stdout)
    assert parent_id, swept.stdout

    submitted = dict(line.split() for line in (slurm_standin / "submitted").read_text().splitlines())
    executed = dict(line.split() for line in (slurm_standin / "executed").read_text().splitlines())
    assert len(submitted) == 2 and executed == dict.fromkeys(submitted, "0")  # both batch scripts ran and exited 0
    folder = workdir / "submitit"
    for job_id in submitted:
        script = (folder / f"{job_id}_submission.sh").read_text()  # submitit renames the script it submitted
        assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --time=5" in script
        assert "srun --unbuffered --output" in script and "submitit.core._submit" in script
        assert (folder / f"{job_id}_0_result.pkl").exists()  # written by the job, read back by the sweep
        logs = (folder / f"{job_id}_0_log.out").read_text() + (folder / f"{job_id}_0_log.err").read_text()
        assert f"JobEnvironment(job_id={job_id}," in logs  # srun's output files; SLURM_JOB_ID reached submitit

    client = MlflowClient(tracking_server.url)
    experiment = client.get_experiment_by_name("slurm")
    children = client.search_runs([experiment.experiment_id], "tags.`twinids.job` = 'train'")
    assert sorted(child.data.params["seed"] for child in children) == ["11", "12"]
    assert {child.info.status for child in children} == {"FINISHED"}
    assert {child.data.tags["mlflow.parentRunId"] for child in children} == {parent_id.group(1)}


def test_a_stopped_slurm_sweep_cancels_its_jobs_and_ends_every_run_killed(
    slurm_standin, tracking_server, server_cli_factory, tmp_path
):
    twinids = server_cli_factory(tmp_path, tracking_server.url)
    minutes_long = ["trainer.max_epochs=200", "callbacks.early_stopping.patience=200"]  # early stopping never ends it
    long_jobs = ["experiment=smoke", "data.source.n_steps=900", *minutes_long, "seed=11,12"]
    sweep = twinids.start("sweep", "--launcher", "slurm", "--jobs", "2", *long_jobs, "tracking.mlflow_experiment=stop")
    client = MlflowClient(tracking_server.url)

    def running_children() -> list:
        experiment = client.get_experiment_by_name("stop")
        if experiment is None:
            return []
        found = client.search_runs([experiment.experiment_id], "tags.`twinids.job` = 'train'")
        return [run for run in found if run.info.status == "RUNNING"]

    deadline = time.monotonic() + 180
    while len(running_children()) < 2:  # both jobs started on the "cluster" and opened their runs
        assert sweep.poll() is None and time.monotonic() < deadline, "\n".join(sweep.communicate())
        time.sleep(1)
    sweep.send_signal(signal.SIGTERM)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signal.SIGTERM, out + err

    submitted = [line.split()[0] for line in (slurm_standin / "submitted").read_text().splitlines()]
    assert len(submitted) == 2
    assert {(slurm_standin / f"{job_id}.state").read_text() for job_id in submitted} == {"CANCELLED"}  # scancel
    experiment = client.get_experiment_by_name("stop")
    every_run = client.search_runs([experiment.experiment_id])
    assert len(every_run) == 3 and {run.info.status for run in every_run} == {"KILLED"}, every_run
    for job_id in submitted:  # the job's processes are gone, as scancel leaves them
        pid = int((slurm_standin / f"{job_id}.pid").read_text())
        ended_by = time.monotonic() + 30
        while process_group_alive(pid) and time.monotonic() < ended_by:
            time.sleep(0.5)
        assert not process_group_alive(pid), f"job {job_id} still runs after scancel"


def process_group_alive(pgid: int) -> bool:
    """Whether any process of the group still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
