"""`run_sweep`: one parent run, one child per job, resume by config hash, failures that do not stop the sweep.

Jobs run in this process through submitit's `debug` launcher (real training on the smoke overlay); the
worker pool, parallel jobs and signals are covered through the real command in test_sweep_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from twinids.errors import TwinIDSError
from twinids.launch.sweep import SweepSettings, plan_jobs, run_sweep
from twinids.tracking.config_hash import config_hash


def smoke(workdir: Path, *overrides: str) -> list[str]:
    """A seconds-long job on a small simulator (seeds 1 and 3 give test splits with attacks)."""
    small = ["experiment=smoke", "data.source.n_steps=900", "model.module.net.hidden_size=8"]
    return [*small, f"paths.output_dir={workdir / 'outputs'}", *overrides]


def sweep(workdir: Path, *overrides: str, force: bool = False):
    settings = SweepSettings(
        smoke(workdir, *overrides), launcher="debug", force=force, tracking_uri=store(workdir),
        submitit_folder=workdir / "submitit",
    )  # fmt: skip
    lines: list[str] = []
    summary = run_sweep(settings, lambda outcome: lines.append(outcome.line()))
    return summary, lines


def store(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"


def children(workdir: Path, parent: str) -> list:
    client = MlflowClient(store(workdir))
    experiment = client.get_experiment_by_name("twinids").experiment_id
    return client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}'")


def test_every_job_is_a_child_run_of_one_sweep_parent_tagged_with_its_config_hash(tmp_path):
    summary, lines = sweep(tmp_path, "seed=1,3")
    assert summary.counts() == {"FINISHED": 2, "FAILED": 0, "SKIPPED": 0, "KILLED": 0}
    parent = MlflowClient(store(tmp_path)).get_run(summary.parent_run_id)
    assert parent.data.tags["twinids.job"] == "sweep" and parent.info.status == "FINISHED"
    assert parent.data.params["sweep.jobs"] == "2" and "seed=1,3" in parent.data.params["sweep.overrides"]
    runs = {run.info.run_id: run for run in children(tmp_path, summary.parent_run_id)}
    assert set(runs) == {outcome.run_id for outcome in summary.outcomes}
    jobs, _, _ = plan_jobs(smoke(tmp_path, "seed=1,3"), store(tmp_path))
    for job, outcome in zip(jobs, summary.outcomes, strict=True):
        run = runs[outcome.run_id]
        assert run.info.status == "FINISHED" and run.data.tags["twinids.job"] == "train"
        assert run.data.tags["twinids.config_hash"] == job.config_hash
        assert run.data.params["seed"] == job.overrides[-1].split("=")[1]
    assert [line.split()[:2] for line in lines] == [["1", "FINISHED"], ["2", "FINISHED"]]


def test_a_rerun_runs_only_the_jobs_without_a_finished_run_under_the_same_parent(tmp_path):
    first, _ = sweep(tmp_path, "seed=1,3")
    MlflowClient(store(tmp_path)).delete_run(first.outcomes[1].run_id)  # as if job 2 had been killed
    second, lines = sweep(tmp_path, "seed=1,3")
    assert [outcome.status for outcome in second.outcomes] == ["SKIPPED", "FINISHED"]
    assert second.outcomes[0].run_id == first.outcomes[0].run_id
    assert second.parent_run_id == first.parent_run_id
    assert "finished before" in lines[0]
    forced, _ = sweep(tmp_path, "seed=1,3", force=True)
    assert [outcome.status for outcome in forced.outcomes] == ["FINISHED", "FINISHED"]
    assert forced.parent_run_id != first.parent_run_id


def test_a_failed_job_ends_failed_with_its_error_and_the_sweep_goes_on(tmp_path):
    summary, lines = sweep(tmp_path, "seed=1", "model.module.optimizer.lr=-1,0.003")
    assert [outcome.status for outcome in summary.outcomes] == ["FAILED", "FINISHED"]
    assert "model.module.optimizer" in lines[0]
    failed = MlflowClient(store(tmp_path)).get_run(summary.outcomes[0].run_id)
    assert failed.info.status == "FAILED" and failed.data.tags["mlflow.parentRunId"] == summary.parent_run_id
    assert "model.module.optimizer" in failed.data.tags["twinids.error"]
    assert MlflowClient(store(tmp_path)).get_run(summary.parent_run_id).info.status == "FAILED"
    rerun, _ = sweep(tmp_path, "seed=1", "model.module.optimizer.lr=-1,0.003")
    assert [outcome.status for outcome in rerun.outcomes] == ["FAILED", "SKIPPED"]


def test_the_config_hash_of_a_job_is_that_of_the_config_train_composes(tmp_path):
    from twinids.config import compose

    jobs, uri, experiment = plan_jobs(smoke(tmp_path, "seed=1,3"), store(tmp_path))
    assert [job.config_hash for job in jobs] == [
        config_hash(compose(smoke(tmp_path, f"seed={seed}"))) for seed in (1, 3)
    ]
    assert uri == store(tmp_path) and experiment == "twinids"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=glob(nothing*)"], "matches no option of config group 'model'"),
        (["model=lstm,lstmx"], "unknown option 'lstmx'"),
        (["model.module.net.hiden=1,2"], "unknown config key 'model.module.net.hiden'"),
        (["tracking.mlflow_experiment=a,b"], "one store and experiment"),
    ],
)
def test_a_sweep_that_cannot_be_planned_is_refused_before_any_run(tmp_path, overrides, message):
    with pytest.raises(TwinIDSError, match=message):
        sweep(tmp_path, *overrides)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


def test_a_launcher_that_cannot_run_the_jobs_is_refused_before_the_parent_run_exists(tmp_path):
    settings = SweepSettings(smoke(tmp_path, "seed=1"), launcher="slurm", tracking_uri=store(tmp_path))
    with pytest.raises(TwinIDSError, match="must track to a shared MLflow server"):
        run_sweep(settings)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # refused before the store, let alone a run
