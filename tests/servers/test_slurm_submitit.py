"""`twinids sweep --launcher slurm` end to end through submitit, with stand-in SLURM commands that run jobs here.

The stand-ins (`slurm_standin.py`) really run the batch scripts submitit writes, `srun` line included, so what
submitit puts in them (python, folder, output files, SLURM variables it reads back) is exercised, not only set.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

STANDIN = Path(__file__).with_name("slurm_standin.py")
COMMANDS = ("sbatch", "srun", "sacct", "squeue", "scancel")


@pytest.fixture
def slurm_standin(tmp_path, monkeypatch) -> Path:
    """A bin folder of stand-in SLURM commands first on PATH; returns the folder holding the jobs' state."""
    bin_dir, state = tmp_path / "slurm-bin", tmp_path / "slurm-state"
    bin_dir.mkdir()
    state.mkdir()
    for name in COMMANDS:
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "{state}" {name} "$@"\n')
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return state


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
