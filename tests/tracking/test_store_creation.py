"""A SQLite tracking store is created once, however many jobs start together; existing stores keep their runs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from twinids.tracking.run import start_run
from twinids.tracking.store import prepare_store

JOBS = 4

# One job: import everything, say ready, wait for the common start signal, then create the store and a run.
JOB = """
import sys, time
from pathlib import Path
from mlflow.tracking import MlflowClient
from twinids.tracking.store import prepare_store

folder, index = Path(sys.argv[1]), sys.argv[2]
(folder / f"ready-{index}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
uri = prepare_store("parallel", f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
client = MlflowClient(uri)
experiment = client.get_experiment_by_name("parallel")
run = client.create_run(experiment.experiment_id, run_name=f"job-{index}")
client.log_metric(run.info.run_id, "test/f1_macro", float(index))
client.set_terminated(run.info.run_id, "FINISHED")
"""


@pytest.mark.slow
def test_jobs_started_together_in_an_empty_folder_all_keep_their_runs(tmp_path):
    jobs = [
        subprocess.Popen([sys.executable, "-c", JOB, str(tmp_path), str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(JOBS)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < JOBS and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all of them reach the empty store at the same moment
    errors = [job.communicate(timeout=300)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * JOBS, "\n".join(errors)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("parallel").experiment_id])
    assert sorted(run.info.run_name for run in runs) == [f"job-{i}" for i in range(JOBS)]
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert len(client.search_experiments()) == 2  # "Default" and "parallel", each created once


def test_preparing_an_existing_store_again_keeps_its_experiment_and_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with start_run("kept", uri, run_name="first") as run:
        run.log_metrics({"test/f1_macro": 0.5})
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("kept").experiment_id

    assert prepare_store("kept", uri) == uri
    assert client.get_experiment_by_name("kept").experiment_id == experiment_id
    (kept,) = client.search_runs([experiment_id])
    assert (kept.info.run_id, kept.info.run_name, kept.data.metrics) == (run.run_id, "first", {"test/f1_macro": 0.5})


def test_a_new_experiment_keeps_its_artifacts_beside_the_sqlite_store(tmp_path):
    uri = prepare_store("beside", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    location = MlflowClient(uri).get_experiment_by_name("beside").artifact_location
    assert location == (tmp_path / "store" / "artifacts" / "beside").as_uri()


def test_the_default_store_is_created_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert prepare_store("here") == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
