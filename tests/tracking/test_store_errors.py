"""A tracking store that cannot be used fails before the run, in one line that names it, and within seconds."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from twinids.errors import TwinIDSError
from twinids.tracking.run import start_run
from twinids.tracking.store import HTTP_SETTINGS, check_store, prepare_store

TINY_TRAIN = ("train", "experiment=smoke", "data.source.n_steps=900")


@pytest.fixture
def closed_port_uri():
    """The URI of a local port that refuses connections: bound, never listening, for the whole test."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture
def corrupt_store(tmp_path):
    """A file of random bytes where the SQLite store should be."""
    database = tmp_path / "mlruns" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(os.urandom(4096))
    return database


@pytest.fixture
def read_only_store(tmp_path):
    """A store holding one experiment, then made read-only (immutable when running as root, who ignores modes)."""
    database = tmp_path / "mlruns" / "mlflow.db"
    prepare_store("twinids", f"sqlite:///{database}")
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a read-only store")
        made = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {made.stderr.strip()}")
        yield database
        subprocess.run(["chattr", "-i", str(database)], check=True)
    else:
        database.chmod(0o444)
        database.parent.chmod(0o555)
        yield database
        database.parent.chmod(0o755)
        database.chmod(0o644)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_an_unreachable_server_fails_within_seconds_naming_it(closed_port_uri):
    started = time.monotonic()
    refused = pytest.raises(TwinIDSError, match=r"cannot reach the MLflow tracking server at " + closed_port_uri)
    with refused, start_run("twinids", closed_port_uri):
        pytest.fail("a run was started on an unreachable server")
    assert time.monotonic() - started < 10


def test_mlflow_retries_are_bounded_unless_the_user_set_them(closed_port_uri, monkeypatch):
    for name in HTTP_SETTINGS:
        monkeypatch.setenv(name, "x")  # remember the original state, restored after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "45")
    with pytest.raises(TwinIDSError):
        check_store(closed_port_uri)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == HTTP_SETTINGS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "45"


def test_a_corrupt_store_is_named_in_one_line(corrupt_store):
    with pytest.raises(TwinIDSError) as raised:
        prepare_store("twinids", f"sqlite:///{corrupt_store}")
    message = str(raised.value)
    assert str(corrupt_store) in message and "not a usable SQLite database" in message and "\n" not in message


def test_a_read_only_store_is_named_in_one_line_and_left_as_it_was(read_only_store):
    uri = f"sqlite:///{read_only_store}"
    with pytest.raises(TwinIDSError) as raised, start_run("twinids", uri):
        pytest.fail("a run was started in a read-only store")
    message = str(raised.value)
    assert str(read_only_store) in message and "read-only" in message and "\n" not in message
    client = MlflowClient(uri)
    assert client.search_runs([client.get_experiment_by_name("twinids").experiment_id]) == []


def test_reading_a_read_only_store_is_allowed(read_only_store):
    assert check_store(f"sqlite:///{read_only_store}", writable=False) == f"sqlite:///{read_only_store}"


def test_a_deleted_experiment_is_refused_with_how_to_restore_it(tmp_path):
    uri = prepare_store("gone", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient(uri)
    client.delete_experiment(client.get_experiment_by_name("gone").experiment_id)
    with pytest.raises(TwinIDSError, match=r"experiment 'gone' is deleted.*mlflow experiments restore"):
        prepare_store("gone", uri)


def test_eval_against_an_unreachable_server_prints_one_line_in_seconds(twinids_cli, closed_port_uri):
    started = time.monotonic()
    result = twinids_cli("eval", "0123456789abcdef", "--tracking-uri", closed_port_uri)
    assert_one_line_error(result, closed_port_uri)
    assert time.monotonic() - started < 30  # process start and imports included; the check itself takes ms


def test_train_into_a_corrupt_store_prints_one_line_naming_it(twinids_cli, corrupt_store):
    assert_one_line_error(twinids_cli(*TINY_TRAIN), str(corrupt_store))


def test_train_into_a_read_only_store_prints_one_line_naming_it(twinids_cli, read_only_store):
    assert_one_line_error(twinids_cli(*TINY_TRAIN), str(read_only_store), "read-only")
