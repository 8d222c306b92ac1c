"""Launchers: the thread policy per job count, pool workers that apply it, submitit's local and SLURM paths."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from twinids.cpu_policy import wait_policy
from twinids.errors import TwinIDSError
from twinids.launch.launchers import PoolLauncher, make_launcher, thread_policy
from twinids.launch.submitit_launcher import SlurmSettings, slurm_parameters
from twinids.launch.sweep import SweepSettings, run_sweep
from twinids.launch.sweep_jobs import ThreadPolicy, worker_state


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        (1, ThreadPolicy(2, None)),  # alone: all cores; its worker decides from how busy the cores are then
        (2, ThreadPolicy(1, "PASSIVE")),  # two jobs share two cores
        (4, ThreadPolicy(1, "PASSIVE")),  # never fewer than one thread
    ],
)
def test_each_job_gets_its_share_of_the_cores_and_a_wait_policy_for_how_they_are_shared(jobs, expected):
    assert thread_policy(jobs, cores=2) == expected


def test_a_passive_worker_drops_an_inherited_spin_count_that_would_override_it():
    from twinids.cpu_policy import SPIN_COUNT_ENV, WAIT_POLICY_ENV, replace_wait_settings

    environ = {SPIN_COUNT_ENV: "30000"}
    replace_wait_settings({WAIT_POLICY_ENV: "PASSIVE"}, environ)
    assert environ == {WAIT_POLICY_ENV: "PASSIVE"}


@pytest.mark.slow
@pytest.mark.parametrize("policy", [ThreadPolicy(1, "PASSIVE"), ThreadPolicy(2, None)])
def test_a_pool_worker_runs_with_the_thread_policy_it_was_given(policy):
    launcher = PoolLauncher(1, policy)
    try:
        state = launcher.executor.submit(worker_state).result(timeout=300)
    finally:
        launcher.close()
    assert state["threads"] == policy.threads
    if policy.wait_policy is None:  # a lone job decides from how busy the cores were when it started
        assert state["wait_policy"] == wait_policy(1, busy=float(state["busy_cores"]))
    else:
        assert state["wait_policy"] == policy.wait_policy
    assert state["spin_count"] is None  # nothing overrides the wait policy the worker was given or chose


def test_slurm_settings_become_the_sbatch_options_submitit_writes(tmp_path):
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    settings = SlurmSettings(partition="gpu", timeout_min=90, cpus_per_job=4, mem_gb=16, gpus_per_job=1)
    parameters = slurm_parameters(settings, name="twinids-sweep")
    names = SlurmExecutor._equivalence_dict()
    sbatch = {names.get(key, key).removeprefix("slurm_"): value for key, value in parameters.items()}
    sbatch["mem"] = f"{int(sbatch['mem'])}GB"
    script = _make_sbatch_string(command="python -m submitit.core._submit x", folder=tmp_path, **sbatch)
    for line in ("--partition=gpu", "--time=90", "--cpus-per-task=4", "--mem=16GB", "--gpus-per-node=1",
                 "--job-name=twinids-sweep", "--nodes=1", "--ntasks-per-node=1"):  # fmt: skip
        assert f"#SBATCH {line}" in script, line


def test_slurm_jobs_must_track_to_a_shared_server():
    with pytest.raises(TwinIDSError, match="must track to a shared MLflow server"):
        make_launcher("slurm", 4, "sqlite:////tmp/mlflow.db")


def test_an_unknown_launcher_and_zero_jobs_are_refused():
    with pytest.raises(TwinIDSError, match="--launcher must be one of pool, debug, local, slurm"):
        make_launcher("kubernetes", 1, "sqlite:////tmp/x.db")
    with pytest.raises(TwinIDSError, match="--jobs must be 1 or more"):
        make_launcher("pool", 0, "sqlite:////tmp/x.db")


@pytest.mark.parametrize(
    ("launcher", "jobs", "uri", "message"),
    [
        ("bogus", 1, None, "--launcher must be one of"),
        ("pool", 0, None, "--jobs must be 1 or more"),
        ("slurm", 1, "sqlite:///{tmp}/mlflow.db", "must track to a shared MLflow server"),
    ],
)
def test_launcher_settings_that_cannot_work_are_refused_before_jobs_are_composed_or_the_store_made(
    tmp_path, monkeypatch, launcher, jobs, uri, message
):
    # `--launcher bogus` once composed every job and created the store (19 s) before it was refused.
    def no_composing(*args, **kwargs):
        raise AssertionError("a job was composed")

    monkeypatch.setattr("twinids.config.compose", no_composing)
    monkeypatch.chdir(tmp_path)
    tracking_uri = uri.format(tmp=tmp_path) if uri else None
    settings = SweepSettings(["seed=0,1"], jobs, launcher, tracking_uri=tracking_uri)
    if launcher == "slurm":  # the store of a SLURM sweep is known only once its jobs are composed
        monkeypatch.undo()
        monkeypatch.chdir(tmp_path)
    with pytest.raises(TwinIDSError, match=message):
        run_sweep(settings)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_submitit_local_launcher_runs_jobs_as_subprocesses_under_the_parent_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    overrides = ["experiment=smoke", "data.source.n_steps=900", "model.module.net.hidden_size=8", "seed=1",
                 f"paths.output_dir={tmp_path / 'outputs'}"]  # fmt: skip
    settings = SweepSettings(overrides, launcher="local", tracking_uri=uri, submitit_folder=tmp_path / "submitit")
    summary = run_sweep(settings)
    [outcome] = summary.outcomes
    assert outcome.status == "FINISHED", outcome.message
    run = MlflowClient(uri).get_run(outcome.run_id)
    assert run.data.tags["mlflow.parentRunId"] == summary.parent_run_id
    assert any((tmp_path / "submitit").glob("*_log.out"))  # submitit ran it as its own process, with its logs


@pytest.mark.parametrize(
    ("changes", "flag"),
    [({"timeout_min": 0}, "--timeout-min"), ({"cpus_per_job": 0}, "--cpus"), ({"gpus_per_job": -1}, "--gpus"),
     ({"mem_gb": 0.0}, "--mem-gb"), ({"cpus_per_job": True}, "--cpus")],
)  # fmt: skip
def test_slurm_requests_slurm_would_reject_are_refused_naming_the_flag(changes, flag):
    from twinids.errors import TwinIDSError

    with pytest.raises(TwinIDSError, match=flag):
        SlurmSettings(**changes)
