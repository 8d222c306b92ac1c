"""A database tracking URI (postgresql://...) whose database does not answer, or whose driver is missing, fails
before the run in one line within seconds (MLflow alone retries for about two minutes, printing every retry)."""

from __future__ import annotations

import socket
import time

import pytest

from twinids.errors import TwinIDSError
from twinids.tracking import store
from twinids.tracking.store import check_store


@pytest.fixture
def closed_database_uri():
    """A postgresql:// URI, with a password, on a local port that refuses connections for the whole test."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"postgresql://twinids:s3cret@127.0.0.1:{held.getsockname()[1]}/mlflow"


def test_an_unreachable_database_is_refused_within_seconds_naming_it_without_its_password(closed_database_uri):
    started = time.monotonic()
    with pytest.raises(TwinIDSError, match=r"cannot reach the database of the tracking URI") as refused:
        check_store(closed_database_uri)
    assert time.monotonic() - started < store.SERVER_TIMEOUT_S + 1
    port = closed_database_uri.rsplit(":", 1)[1].split("/")[0]
    assert f"at 127.0.0.1:{port}" in str(refused.value)
    assert "s3cret" not in str(refused.value) and "twinids:***@" in str(refused.value)


def test_a_missing_postgres_driver_is_refused_naming_the_extra_that_installs_it(closed_database_uri, monkeypatch):
    monkeypatch.setitem(store.POSTGRES_DRIVERS, "postgresql", "twinids_no_such_driver")
    with pytest.raises(TwinIDSError, match=r"needs the PostgreSQL driver 'twinids_no_such_driver'.*twinids\[server\]"):
        check_store(closed_database_uri)


def test_train_against_an_unreachable_database_is_one_error_line(twinids_cli, closed_database_uri):
    started = time.monotonic()
    refused = twinids_cli("train", "--tracking-uri", closed_database_uri, "experiment=smoke")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database of the tracking URI"), lines
    assert time.monotonic() - started < 60  # MLflow's own retries took about 110 s
