"""`twinids dashboard`: the MLflow UI on the twinids store, opened on the training runs with the main columns.

The slow test starts the real command, loads the printed address in headless Chromium and keeps a
screenshot (set $TWINIDS_TEST_ARTIFACTS to a folder to keep a copy there; the path is printed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from twinids.errors import TwinIDSError
from twinids.tracking.dashboard import (
    VIEW_COLUMNS,
    VIEW_TAG,
    choose_port,
    install_runs_view,
    runs_view_url,
    server_command,
)

CHROMIUM = Path("/usr/bin/chromium")
# The commands registered as twinids/cli/main.py will register them, run through its real `main()`.
CLI = """
from twinids.cli import main, studies
main.app.command("dashboard")(studies.dashboard_command)
main.main()
"""


def test_the_address_opens_the_experiments_training_runs_with_the_twinids_view():
    assert runs_view_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=twinids-runs"
    )


def test_the_view_is_saved_on_the_experiment_as_mlflow_reads_saved_views(store_uri, log_run):
    log_run()
    experiment_id = install_runs_view(store_uri, "twinids")

    envelope = json.loads(MlflowClient(store_uri).get_experiment(experiment_id).tags[VIEW_TAG])
    state = json.loads(envelope["state"])
    assert envelope["name"] == "twinids" and isinstance(envelope["createdAt"], int)
    assert state["selectedColumns"] == list(VIEW_COLUMNS)
    assert {
        "tags.`twinids.model`",
        "tags.`twinids.dataset`",
        "tags.`twinids.epsilon`",
        "metrics.`test/f1_macro`",
    } <= set(state["selectedColumns"])


def test_saving_the_view_again_leaves_it_unchanged(store_uri, log_run):
    log_run()
    experiment_id = install_runs_view(store_uri, "twinids")
    client = MlflowClient(store_uri)
    first = client.get_experiment(experiment_id).tags[VIEW_TAG]
    time.sleep(0.01)
    install_runs_view(store_uri, "twinids")
    assert client.get_experiment(experiment_id).tags[VIEW_TAG] == first


def test_no_experiment_yet_means_no_view(store_uri, log_run):
    log_run()
    assert install_runs_view(store_uri, "not-trained-yet") is None


def test_port_5000_by_default_a_free_one_if_taken_and_a_taken_explicit_port_is_refused():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(TwinIDSError, match=f"port {taken} on 127.0.0.1 is in use"):
            choose_port("127.0.0.1", taken)
        assert choose_port("127.0.0.1", 0) != taken
    default = choose_port("127.0.0.1", None)
    assert default != 5000 if _taken(5000) else default == 5000


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("port", [70000, -1])
def test_a_port_outside_0_to_65535_is_refused(port):
    with pytest.raises(TwinIDSError, match=rf"--port must be an integer in 0-65535 .*got {port}$"):
        choose_port("127.0.0.1", port)


@pytest.mark.parametrize("host", ["10.254.254.254", "no-such-host.invalid"])
def test_a_host_this_machine_cannot_listen_on_is_refused(host):
    with pytest.raises(TwinIDSError, match=rf"cannot listen on host '{re.escape(host)}' \(.+\); give --host"):
        choose_port(host, None)


def dashboard(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`twinids dashboard` in workdir, through the CLI's real `main()`; $MLFLOW_TRACKING_URI unset."""
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "TWINIDS_DEBUG")}
    command = [sys.executable, "-c", CLI, "dashboard", *args]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_a_folder_without_a_store_is_refused_and_left_without_one(tmp_path):
    line = one_error_line(dashboard(tmp_path))
    assert f"no tracking store at {tmp_path / 'mlruns' / 'mlflow.db'} yet" in line and "twinids train" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not a database, just text" * 50, "is not a usable SQLite database (file is not a database)"),
        (b"", "is a SQLite database but not an MLflow tracking store"),
    ],
)
def test_a_file_that_is_not_an_mlflow_store_is_refused_and_left_unchanged(tmp_path, content, fragment):
    database = tmp_path / "mlflow.db"
    database.write_bytes(content)
    assert fragment in one_error_line(dashboard(tmp_path, "--tracking-uri", f"sqlite:///{database}"))
    assert database.read_bytes() == content


def test_a_store_uri_of_no_known_scheme_is_refused(tmp_path):
    line = one_error_line(dashboard(tmp_path, "--tracking-uri", "foo://bar"))
    assert "foo://bar names no kind of store MLflow knows" in line


def test_a_taken_port_is_the_only_line_printed(tmp_path, store_uri, log_run):
    log_run()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        line = one_error_line(dashboard(tmp_path, "--tracking-uri", store_uri, "--port", str(taken)))
    assert f"port {taken} on 127.0.0.1 is in use" in line


def test_a_sqlite_store_keeps_new_artifacts_beside_its_database(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    command = server_command(uri, "127.0.0.1", 5001, 1)
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert command[command.index("--default-artifact-root") + 1] == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert command[-6:] == ["--host", "127.0.0.1", "--port", "5001", "--workers", "1"]


def chromium(url: str, profile: Path, screenshot: Path) -> str:
    """The DOM of `url` after the single-page app has loaded its data, and a screenshot of it."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1920,1080", "--virtual-time-budget=20000",
        f"--screenshot={screenshot}", "--dump-dom", url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout


@pytest.mark.slow
def test_the_dashboard_shows_the_training_runs_with_main_columns_and_stops_on_ctrl_c(tmp_path, log_run, store_uri):
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    log_run(
        experiment="ids-study",
        name="lstm-nsl_kdd-a1b2c3",
        params={"model/name": "lstm"},
        metrics={"test/f1_macro": 0.9123},
        tags={"twinids.model": "lstm", "twinids.dataset": "nsl_kdd", "twinids.epsilon": "2.0"},
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri}
    env.pop("TWINIDS_DEBUG", None)
    server = subprocess.Popen(
        [sys.executable, "-c", CLI, "dashboard", "--experiment", "ids-study", "--port", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = server.stdout.readline()  # printed once the server answers /health
        url = re.search(r"MLflow dashboard: (\S+)", first)
        assert url, first + server.stderr.read() if server.poll() is not None else first
        url = url.group(1)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?viewStateShareKey=twinids-runs", url)

        screenshot = tmp_path / "dashboard.png"
        page = chromium(url, tmp_path / "chromium-profile", screenshot)
        print(f"dashboard screenshot: {screenshot}")
        if os.environ.get("TWINIDS_TEST_ARTIFACTS"):
            keep = Path(os.environ["TWINIDS_TEST_ARTIFACTS"])
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(screenshot, keep / "dashboard.png")

        assert "Training runs" in page and "ids-study" in page  # the experiment's runs tab, not GenAI Overview
        assert "lstm-nsl_kdd-a1b2c3" in page
        for column in ("twinids.model", "twinids.dataset", "twinids.epsilon", "test/f1_macro"):
            assert column in page  # shown without clicking "Columns"
        assert "0.9123" in page and "nsl_kdd" in page
        assert screenshot.stat().st_size > 10_000
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    port = int(re.search(r":(\d+)/", url).group(1))
    assert server.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not _taken(port)  # the server and its workers are gone
