"""`twinids federate` on Flower's simulation engine: both DP modes, parent and client runs, a client crashing
mid-round, and Ctrl-C."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from opacus.accountants import RDPAccountant

pytestmark = pytest.mark.slow

PARENT_TAG = "mlflow.parentRunId"


def store(workdir: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


def federation_runs(client: MlflowClient, output: str):
    """The parent run a `twinids federate` printed, and its client runs by client name."""
    parent = client.get_run(re.search(r"run id: ([0-9a-f]{32})", output).group(1))
    children = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
    return parent, {run.data.tags["twinids.federation.client"]: run for run in children}


def steps(client: MlflowClient, run_id: str, metric: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))


@pytest.fixture(scope="module")
def client_dp(tmp_path_factory, cli_runner_factory):
    workdir = tmp_path_factory.mktemp("client_dp")
    result = cli_runner_factory(workdir)("federate", "experiment=smoke", "federation.client_dp.target_epsilon=3")
    assert result.returncode == 0, result.stderr
    return workdir, result


@pytest.fixture(scope="module")
def local_dp(tmp_path_factory, cli_runner_factory):
    workdir = tmp_path_factory.mktemp("local_dp")
    result = cli_runner_factory(workdir)(  # 3 rounds of 1 epoch: more epochs than the smoke trainer's 2
        "federate",
        "experiment=smoke",
        "federation.rounds=3",
        "trainer.limit_train_batches=4",
        "privacy=dp",
        "privacy.target_epsilon=3",
    )
    assert result.returncode == 0, result.stderr
    return workdir, result


def test_a_federation_is_a_parent_run_with_one_finished_run_per_client(client_dp):
    workdir, result = client_dp
    client = store(workdir)
    parent, children = federation_runs(client, result.stdout)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["twinids.job"] == "federate"
    assert parent.data.params["federation/rounds"] == "2"  # the whole resolved config, as for train
    assert sorted(children) == ["plant_1", "plant_2", "plant_3"]
    for name, run in children.items():
        assert run.info.status == "FINISHED"
        assert [s for s, _ in steps(client, run.info.run_id, "test/f1_macro")] == [1, 2], name
        assert run.data.metrics["data/train_windows"] > 0
    assert [s for s, _ in steps(client, parent.info.run_id, "test/f1_macro")] == [1, 2]
    worst = parent.data.metrics["test/worst_client_f1_macro"]
    assert worst == min(run.data.metrics["test/f1_macro"] for run in children.values())
    assert worst <= parent.data.metrics["test/mean_client_f1_macro"]
    assert re.search(r"^round 2/2: 3 clients trained, test macro-F1 ", result.stdout, re.MULTILINE)


def test_client_level_dp_spends_what_opacus_accounts_for_the_released_rounds(client_dp):
    workdir, result = client_dp
    client = store(workdir)
    parent, _ = federation_runs(client, result.stdout)
    sigma = float(parent.data.params["federation.client_dp.noise_multiplier_used"])
    epsilons = steps(client, parent.info.run_id, "privacy/epsilon")
    assert [s for s, _ in epsilons] == [1, 2]
    accountant = RDPAccountant()
    for (_, claimed), _round in zip(epsilons, range(2), strict=True):
        accountant.step(noise_multiplier=sigma, sample_rate=1.0)  # every client in every round: no amplification
        assert claimed == pytest.approx(accountant.get_epsilon(delta=1e-3), rel=1e-9)
    assert 2.9 < epsilons[-1][1] <= 3.0 + 1e-6  # σ calibrated to spend the target over the planned rounds
    assert parent.data.tags["twinids.federation.client_dp"] == "server"


def test_local_dp_sgd_keeps_each_clients_accountant_across_rounds(local_dp):
    workdir, result = local_dp
    client = store(workdir)
    parent, children = federation_runs(client, result.stdout)
    finals = []
    for name, run in children.items():
        spent = steps(client, run.info.run_id, "privacy/epsilon")
        assert [s for s, _ in spent] == [1, 2, 3], name
        first, second, third = (value for _, value in spent)
        assert 0 < first < second < third <= 3.0 + 1e-6, name  # each round adds to the steps before, within target
        finals.append(third)
    assert parent.data.metrics["privacy/max_client_epsilon"] == pytest.approx(max(finals))
    assert "privacy/epsilon" not in parent.data.metrics  # no client-level guarantee was claimed


def test_a_client_that_crashes_mid_round_is_recorded_and_the_federation_goes_on(tmp_path, smoke_config, mlflow_client):
    sys.path.insert(0, str(Path(__file__).parent))  # Ray's actors import the flaky app by name from this path
    try:
        flaky = importlib.import_module("flaky_client_app")
        from twinids.config import compose
        from twinids.federation.federate_job import federate

        cfg = compose(
            [
                "experiment=smoke",
                "federation.rounds=3",
                f"tracking.uri=sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                f"paths.output_dir={tmp_path / 'outputs'}",
            ],
            config_name="federate",
        )
        result = federate(cfg, client_app=flaky.app)
    finally:
        sys.path.remove(str(Path(__file__).parent))
    client = mlflow_client(tmp_path)
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["twinids.federation.dropped"] == "plant_2@2"
    trained = steps(client, result.run_id, "federation/clients_trained")
    assert trained == [(1, 3.0), (2, 2.0), (3, 3.0)]  # round 2 completed with the others; plant_2 came back
    assert steps(client, result.run_id, "federation/released") == [(1, 1.0), (2, 1.0), (3, 1.0)]
    children = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{result.run_id}'")
    dropped = {r.data.tags["twinids.federation.client"]: r for r in children}["plant_2"]
    assert steps(client, dropped.info.run_id, "federation/dropped") == [(2, 1.0)]


def test_ctrl_c_ends_the_federation_and_every_run_killed(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"}
    twinids = Path(sys.executable).with_name("twinids")
    process = subprocess.Popen(
        [str(twinids), "federate", "experiment=smoke", "federation.rounds=20"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith("round 1/"):
            break
    process.send_signal(signal.SIGINT)
    began = time.monotonic()
    code = process.wait(timeout=120)
    assert code == 130, process.stderr.read()  # type: ignore[union-attr]
    assert time.monotonic() - began < 60  # Flower's waiting server thread does not hold the process
    assert process.stderr.read().strip().splitlines()[-1] == "interrupted by SIGINT"  # type: ignore[union-attr]
    client = store(tmp_path)
    run_id = re.search(r"federation run ([0-9a-f]{32})", "".join(lines)).group(1)
    parent = client.get_run(run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{run_id}'")
    assert parent.info.status == "KILLED"
    assert len(children) == 3 and {r.info.status for r in children} == {"KILLED"}


def test_real_devices_whose_features_differ_are_refused_naming_both(cli_runner_factory, tmp_path, shared_datasets):
    twinids = cli_runner_factory(tmp_path)
    clients = "{fridge: {source: {devices: [fridge]}}, gps: {source: {devices: [gps_tracker]}}}"
    result = twinids(
        "federate",
        "experiment=smoke",
        "data=ton_iot",
        f"data.root={shared_datasets}",
        "~federation.clients",
        f"+federation.clients={clients}",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: clients fridge and gps encode different windows (fridge alone reads [")
    assert "gps alone reads [" in lines[0] and "latitude" in lines[0]
