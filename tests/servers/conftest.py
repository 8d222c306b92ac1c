"""A real PostgreSQL in a temporary cluster behind a real `mlflow server`, and `twinids` run against it.

Debian's `postgresql` package provides the binaries (`.ci/run` installs it); the cluster is the test's own,
never the system service. Where the binaries or the Python driver are missing the tests fail under CI
(`CI=true`) and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"
CLUSTER_USER = "postgres"  # initdb refuses to run as root; Debian's package creates this user


def missing(reason: str) -> None:
    """Fail under CI (a server test must never pass by not running), skip with the reason elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must run the tracking-server tests: .ci/run installs it)")
    pytest.skip(reason)


def postgres_bin() -> Path:
    """The newest of Debian's PostgreSQL binary folders that holds initdb and pg_ctl."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    usable = [folder for folder in found if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()]
    if not usable:
        missing(f"no PostgreSQL server binaries at {POSTGRES_BINARIES} (apt-get install postgresql)")
    return usable[-1]


def cluster_user_prefix() -> list[str]:
    """How to run a cluster command as a user initdb accepts: as ourselves, or through runuser as `postgres` as root."""
    if os.getuid() != 0:
        return []
    try:
        pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        missing(f"running as root and there is no '{CLUSTER_USER}' user to own a PostgreSQL cluster")
    return ["runuser", "-u", CLUSTER_USER, "--"]


@pytest.fixture(scope="session")
def postgres_uri(free_port) -> Iterator[str]:
    """`postgresql://postgres@127.0.0.1:PORT/mlflow`: a database in a fresh cluster on a free port, removed after."""
    try:
        import psycopg  # noqa: F401  (SQLAlchemy 2.1's driver for postgresql:// URLs)
    except ImportError:
        missing("the PostgreSQL driver is not installed: pip install -e '.[server]'")
    binaries, as_user = postgres_bin(), cluster_user_prefix()
    folder = Path(tempfile.mkdtemp(prefix="twinids-postgres-"))  # /tmp: the cluster user must reach it
    if os.getuid() == 0:
        shutil.chown(folder, CLUSTER_USER)
    data, log, port = folder / "data", folder / "postgres.log", free_port()
    initdb = [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
    made = subprocess.run([*as_user, *initdb], capture_output=True, text=True)
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"initdb failed: {made.stderr.strip()[-2000:]}")
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log)]
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"  # a throwaway cluster: no need to survive a crash
    started = subprocess.run([*as_user, *pg_ctl, "-o", options, "-w", "start"], capture_output=True, text=True)
    try:
        if started.returncode != 0:
            pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{log.read_text(errors='replace')[-2000:]}")
        createdb = [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"]
        subprocess.run(createdb, check=True, capture_output=True, text=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_user, *pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class TrackingServer:
    """A running `mlflow server`: its URL, its database and the folder its proxied artifacts land in."""

    url: str
    backend_store_uri: str
    artifacts: Path


@pytest.fixture(scope="session")
def tracking_server(
    postgres_uri: str, tmp_path_factory: pytest.TempPathFactory, mlflow_server
) -> Iterator[TrackingServer]:
    """`mlflow server` on the PostgreSQL database, serving artifacts itself (clients upload and fetch over HTTP)."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(postgres_uri, folder) as url:
        yield TrackingServer(url, postgres_uri, folder / "artifacts")


def make_server_cli(workdir: Path, tracking_uri: str | None):
    """A function running (or, with `.start`, starting) the real `twinids` in workdir with MLFLOW_TRACKING_URI set
    to `tracking_uri` (None: unset, so only a `tracking.uri=`/`--tracking-uri` argument points anywhere else)."""

    def command(*args: str) -> list[str]:
        executable = Path(sys.executable).with_name("twinids")
        return [str(executable), *args] if executable.exists() else [sys.executable, "-m", "twinids.cli.main", *args]

    def environment() -> dict[str, str]:
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri or ""}
        if tracking_uri is None:
            env.pop("MLFLOW_TRACKING_URI")
        env.pop("TWINIDS_DEBUG", None)
        return env

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            command(*args), cwd=workdir, env=environment(), capture_output=True, text=True, timeout=timeout
        )

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen(
            command(*args), cwd=workdir, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    run.start = start  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="session")
def server_cli_factory():
    """`server_cli_factory(workdir, tracking_uri)`: `make_server_cli` for tests and module-scoped fixtures."""
    return make_server_cli
