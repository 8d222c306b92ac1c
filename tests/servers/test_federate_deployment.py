"""`twinids federate` on Flower's deployment engine: a real SuperLink and three SuperNodes as separate processes on
127.0.0.1, runs logged to the MLflow server on PostgreSQL, both DP modes at once (client-level DP on the server,
DP-SGD in each client); one SuperNode is killed mid-run and the federation goes on without it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from opacus.accountants import RDPAccountant

pytestmark = pytest.mark.slow

PARENT_TAG = "mlflow.parentRunId"


def flower(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def wait_for_line(path: Path, pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and re.search(pattern, path.read_text(errors="replace")):
            return
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} never appeared in {path}:\n{path.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def superlink_and_nodes(tmp_path, free_port) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A SuperLink and three SuperNodes (partition-id 0, 1, 2), each its own process; stopped afterwards."""
    link_port = free_port()
    # The SuperLink and SuperNodes start Flower's other processes (flower-superexec, flwr-serverapp, flwr-clientapp)
    # from the PATH, as in an activated environment.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    processes: list[subprocess.Popen] = []
    logs = []

    def start(command: list[str], log: Path) -> subprocess.Popen:
        handle = log.open("w")
        logs.append(handle)
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        processes.append(process)
        return process

    link_log = tmp_path / "superlink.log"
    start(
        [
            flower("flower-superlink"),
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(link_port),
            "--database",
            str(tmp_path / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ],
        link_log,
    )
    wait_for_line(link_log, "Uvicorn running", 60)
    nodes = []
    for partition in range(3):
        node_log = tmp_path / f"supernode{partition}.log"
        nodes.append(
            start(
                [
                    flower("flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{link_port}",
                    "--node-config",
                    f"partition-id={partition} num-partitions=3",
                    "--port",
                    str(free_port()),
                ],
                node_log,
            )
        )
        wait_for_line(node_log, "SuperNode ID", 60)
    try:
        yield f"127.0.0.1:{link_port}", nodes
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in logs:
            handle.close()


def test_three_supernodes_train_privately_and_a_killed_one_is_recorded_as_dropped(
    superlink_and_nodes, tracking_server, server_cli_factory, tmp_path
):
    address, nodes = superlink_and_nodes
    twinids = server_cli_factory(tmp_path, None)
    federate = twinids.start(  # type: ignore[attr-defined]
        "federate",
        "experiment=smoke",
        "federation.engine=deployment",
        f"federation.superlink={address}",
        "federation.rounds=3",
        "federation.round_timeout_s=60",
        f"tracking.uri={tracking_server.url}",
        "federation.client_dp.noise_multiplier=1.0",
        "privacy=dp",
        "privacy.target_epsilon=3",
    )
    lines = []
    for line in federate.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if line.startswith("round 1/3"):
            nodes[2].kill()  # plant_3's SuperNode goes away between rounds
            break
    out, err = federate.communicate(timeout=600)
    output = "".join(lines) + out
    assert federate.returncode == 0, err
    assert "round 1/3: 3 clients trained" in output
    assert re.search(r"round 2/3: 2 clients trained.*dropped: plant_3", output)
    run_id = re.search(r"run id: ([0-9a-f]{32})", output).group(1)
    client = MlflowClient(tracking_server.url)
    parent = client.get_run(run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["twinids.federation.engine"] == "deployment"
    assert parent.data.tags["twinids.federation.dropped"] == "plant_3@2"

    def history(run: str, metric: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run, metric))

    assert history(run_id, "federation/clients_trained") == [(1, 3.0), (2, 2.0), (3, 2.0)]
    # Client-level noise is calibrated for three clients: with two, rounds 2 and 3 release nothing and spend nothing.
    assert history(run_id, "federation/released") == [(1, 1.0), (2, 0.0), (3, 0.0)]
    assert parent.data.tags["twinids.federation.skipped_rounds"] == "2,3"
    accountant = RDPAccountant()
    accountant.step(noise_multiplier=1.0, sample_rate=1.0)
    one_release = accountant.get_epsilon(delta=1e-3)
    assert history(run_id, "privacy/epsilon") == [(step, pytest.approx(one_release)) for step in (1, 2, 3)]
    children = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{run_id}'")
    by_name = {run.data.tags["twinids.federation.client"]: run for run in children}
    assert sorted(by_name) == ["plant_1", "plant_2", "plant_3"]
    tested = {
        name: sorted(m.step for m in client.get_metric_history(run.info.run_id, "test/f1_macro"))
        for name, run in by_name.items()
    }
    assert tested == {"plant_1": [1, 2, 3], "plant_2": [1, 2, 3], "plant_3": [1]}
    # Each SuperNode starts a new ClientApp process per message: its DP-SGD accountant lives in the node's state.
    spent = [value for _, value in history(by_name["plant_1"].info.run_id, "privacy/epsilon")]
    assert len(spent) == 3 and 0 < spent[0] < spent[1] < spent[2] <= 3.0 + 1e-6
    assert [a.path for a in client.list_artifacts(run_id, "federation")] == ["federation/global_net.pt"]


def test_a_superlink_that_is_not_there_is_one_error_line(server_cli_factory, tmp_path, free_port):
    twinids = server_cli_factory(tmp_path, f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    done = twinids(
        "federate", "experiment=smoke", "federation.engine=deployment", f"federation.superlink=127.0.0.1:{free_port()}"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the SuperLink at 127.0.0.1:"), done.stderr
