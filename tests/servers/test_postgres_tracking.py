"""Runs from many machines: `twinids` against an MLflow server on PostgreSQL, artifacts proxied by the server."""

from __future__ import annotations

import csv
import io
import re
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

TINY = ["experiment=smoke", "data.source.n_steps=900", "model.module.net.hidden_size=16"]


def run_id_in(output: str) -> str:
    """The run id a `twinids train`/`eval` prints."""
    return re.search(r"run id: ([0-9a-f]{32})", output).group(1)


def test_train_logs_a_finished_run_whose_checkpoint_eval_fetches_through_the_server(
    tracking_server, server_cli_factory, tmp_path
):
    twinids = server_cli_factory(tmp_path, None)  # no MLFLOW_TRACKING_URI: the arguments alone point at the server
    trained = twinids("train", *TINY, "seed=7", f"tracking.uri={tracking_server.url}")
    assert trained.returncode == 0, trained.stderr
    run_id = run_id_in(trained.stdout)
    client = MlflowClient(tracking_server.url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["seed"] == "7"
    assert {"test/f1_macro", "test/accuracy"} <= set(run.data.metrics)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server, not to a local path
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    assert list(tracking_server.artifacts.rglob("best.ckpt")), "the server stored no checkpoint"
    evaluated = twinids("eval", run_id, "--tracking-uri", tracking_server.url)  # fetches the checkpoint over HTTP
    assert evaluated.returncode == 0, evaluated.stderr
    reproduced = client.get_run(run_id_in(evaluated.stdout)).data.metrics
    assert reproduced["test/f1_macro"] == run.data.metrics["test/f1_macro"]
    assert not (tmp_path / "mlruns").exists(), "a local SQLite store was created beside the server"


@pytest.fixture(scope="module")
def concurrent_sweeps(tracking_server, server_cli_factory, tmp_path_factory):
    """Two `twinids sweep --jobs 2` processes started together into one new experiment; their exit and output."""
    workdir = tmp_path_factory.mktemp("concurrent-sweeps")
    twinids = server_cli_factory(workdir, tracking_server.url)
    common = ["--jobs", "2", *TINY, "tracking.mlflow_experiment=concurrent"]  # both race to create the experiment
    started = [twinids.start("sweep", *common, seeds) for seeds in ("seed=1,2", "seed=3,4")]
    began = time.monotonic()
    ended = [process.communicate(timeout=600) for process in started]
    print(f"two sweeps of 2 jobs each at once: {time.monotonic() - began:.1f} s")
    return [(process.returncode, out, err) for process, (out, err) in zip(started, ended, strict=True)]


def test_two_sweeps_started_at_once_keep_every_child_run_under_its_parent(concurrent_sweeps, tracking_server):
    parents = {}
    for returncode, out, err in concurrent_sweeps:
        assert returncode == 0, err
        summary = re.search(r"2 jobs: 2 finished, 0 failed, 0 skipped .*\(parent run ([0-9a-f]{32})\)", out)
        assert summary, out
        parents[summary.group(1)] = None
    client = MlflowClient(tracking_server.url)
    experiment = client.get_experiment_by_name("concurrent")
    every_run = client.search_runs([experiment.experiment_id])
    assert len(every_run) == 6  # two parents and four children: none lost, none doubled
    children = [run for run in every_run if run.data.tags.get("twinids.job") == "train"]
    assert len(children) == 4
    assert all(child.info.status == "FINISHED" for child in children)
    seeds_by_parent = {}
    for child in children:
        seeds_by_parent.setdefault(child.data.tags["mlflow.parentRunId"], set()).add(child.data.params["seed"])
    assert set(seeds_by_parent) == set(parents)
    assert sorted(seeds_by_parent.values(), key=sorted) == [{"1", "2"}, {"3", "4"}]
    for parent_id in parents:
        parent = client.get_run(parent_id)
        assert parent.info.status == "FINISHED"
        assert parent.data.metrics["sweep/finished"] == 2.0


def test_compare_reads_the_runs_from_the_server(concurrent_sweeps, tracking_server, server_cli_factory, tmp_path):
    twinids = server_cli_factory(tmp_path, tracking_server.url)
    compared = twinids("compare", "--experiment", "concurrent", "--by", "model.name", "--format", "csv")
    assert compared.returncode == 0, compared.stderr
    rows = list(csv.DictReader(io.StringIO(compared.stdout)))
    assert [(row["model.name"], row["runs"]) for row in rows] == [("lstm", "4")], compared.stdout  # both sweeps


def test_dashboard_on_a_server_opens_the_servers_own_ui_on_the_twinids_view(
    tracking_server, server_cli_factory, tmp_path
):
    twinids = server_cli_factory(tmp_path, tracking_server.url)
    client = MlflowClient(tracking_server.url)
    client.create_experiment("dashboard-view")
    shown = twinids("dashboard", "--experiment", "dashboard-view")
    assert shown.returncode == 0, shown.stderr
    experiment = client.get_experiment_by_name("dashboard-view")
    expected = f"{tracking_server.url}/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=twinids-runs"
    assert shown.stdout.strip() == f"the tracking server serves its own UI: {expected}"
    assert "mlflow.sharedViewState.twinids-runs" in experiment.tags  # the view the address opens is saved there
    with urllib.request.urlopen(expected.split("#")[0], timeout=10) as page:  # the UI itself answers
        assert page.status == 200


def test_an_unreachable_server_is_one_error_line_and_no_run(server_cli_factory, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    twinids = server_cli_factory(tmp_path, closed)
    for args in (["train", *TINY], ["sweep", "--jobs", "2", *TINY, "seed=1,2"]):
        refused = twinids(*args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the MLflow tracking server at {closed}")
    assert not (tmp_path / "mlruns").exists()


def test_the_running_database_itself_passes_the_store_check(postgres_uri):
    from twinids.tracking.store import check_store

    assert check_store(postgres_uri) == postgres_uri  # reachable, driver installed: MLflow may open it
