"""The MLflow UI on the twinids tracking store, opened on an experiment's training runs with the main columns shown.

MLflow 3.17 opens an experiment on its GenAI "Overview" tab and shows only Source/Models/Dataset columns by
default. The UI reads saved runs-table views from experiment tags `mlflow.sharedViewState.<key>` (a JSON
envelope `{name, createdAt, updatedAt, state}`, `state` the JSON of the table state, `selectedColumns`
included) and opens one from `#/experiments/<id>/runs?viewStateShareKey=<key>`. `install_runs_view` writes
such a view, named "twinids", and `runs_view_url` is the address that opens it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from twinids.errors import TwinIDSError, first_line

DEFAULT_PORT = 5000
MAX_PORT = 65535
VIEW_KEY = "twinids-runs"
VIEW_NAME = "twinids"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# The runs-table columns (MLflow's `<type>.\`<name>\`` column ids), tags group first (`columnOrder`), so that
# model, dataset, ε and test macro-F1 come right after the run name.
VIEW_COLUMNS = (
    "tags.`twinids.model`",
    "tags.`twinids.dataset`",
    "tags.`twinids.epsilon`",
    "metrics.`test/f1_macro`",
    "metrics.`test/accuracy`",
    "metrics.`test/auroc`",
    "metrics.`privacy/epsilon`",
)
VIEW_STATE = {
    "selectedColumns": list(VIEW_COLUMNS),
    "columnOrder": ["attributes.`Run Name`", *VIEW_COLUMNS],
    "orderByKey": "metrics.`test/f1_macro`",
    "orderByAsc": False,
    "searchFilter": "tags.`twinids.job` = 'train'",
}
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


@dataclass
class Dashboard:
    """A running MLflow UI: the server process (None for a remote tracking server), its address and log."""

    process: subprocess.Popen | None
    url: str
    log_path: Path | None

    def wait(self) -> int:
        """Block until the server exits; return its exit code (0 at once for a remote server)."""
        return self.process.wait() if self.process else 0

    def stop(self) -> None:
        """Stop the server and every process it started (its own process group): SIGTERM, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait()


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


def runs_view_url(base_url: str, experiment_id: str) -> str:
    """The address of an experiment's training-runs table with the twinids view (columns, sort) applied."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def install_runs_view(tracking_uri: str, experiment: str) -> str | None:
    """Save the twinids runs-table view on `experiment` (rewritten only when it differs); return the experiment id.

    Returns None when the store has no such experiment (nothing trained yet).
    """
    from mlflow.tracking import MlflowClient

    from twinids.tracking.store import store_errors

    with store_errors(tracking_uri):
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage != "active":
            return None
        state = json.dumps(VIEW_STATE, sort_keys=True)
        current = found.tags.get(VIEW_TAG)
        if current is None or _saved_state(current) != state:
            now = int(time.time() * 1000)
            envelope = {"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": state}
            client.set_experiment_tag(found.experiment_id, VIEW_TAG, json.dumps(envelope))
    return found.experiment_id


def _saved_state(envelope: str) -> str | None:
    try:
        return json.loads(envelope).get("state")
    except (ValueError, AttributeError):
        return None


def choose_port(host: str, port: int | None) -> int:
    """The port to listen on: `port` if free (0: any free one); by default 5000, or any free one if it is taken.

    Raises:
        TwinIDSError: for a port outside 0-65535, a host this machine cannot listen on, or an explicitly
            requested port that is in use.
    """
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_PORT):
        raise TwinIDSError(f"--port must be an integer in 0-{MAX_PORT} (0: any free port); got {port}")
    free = _free_port(host)  # also refuses a host that is not an address of this machine
    if port is None:
        return DEFAULT_PORT if _is_free(host, DEFAULT_PORT) else free
    if port == 0:
        return free
    if not _is_free(host, port):
        raise TwinIDSError(f"port {port} on {host} is in use (another dashboard?); pick another with --port, or 0")
    return port


def _is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    """A port the system picks on `host`; an unknown host or one that is not this machine's is one error line."""
    with socket.socket() as probe:
        try:
            probe.bind((host, 0))
        except OSError as error:  # socket.gaierror for a name that does not resolve is one too
            reason = error.strerror or first_line(error)
            raise TwinIDSError(
                f"cannot listen on host '{host}' ({reason}); give --host an address of this machine, "
                "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
            ) from error
        return probe.getsockname()[1]


def require_store(tracking_uri: str) -> None:
    """Refuse a store the dashboard would have to create or could not read: it opens an existing one, never makes one.

    Raises:
        TwinIDSError: for an unknown URI scheme, a SQLite store that does not exist yet, is not a database or
            holds no MLflow tables, or a server that does not answer.
    """
    from twinids.tracking.store import check_store, sqlite_database

    database = sqlite_database(tracking_uri)
    if database is not None and not database.is_file():
        raise TwinIDSError(
            f"no tracking store at {database} yet; train a run first (`twinids train` creates it there), or point "
            "--tracking-uri (or MLFLOW_TRACKING_URI) at an existing store"
        )
    check_store(tracking_uri, writable=database is not None)  # the twinids view is saved into it
    if database is not None and not _has_mlflow_tables(database):
        raise TwinIDSError(
            f"{database} is a SQLite database but not an MLflow tracking store (it has no MLflow tables); "
            "point --tracking-uri at the store your runs are in"
        )


def _has_mlflow_tables(database: Path) -> bool:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        names = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"experiments", "runs", "alembic_version"} <= names


def server_command(tracking_uri: str, host: str, port: int, workers: int) -> list[str]:
    """`mlflow server` on the store; a SQLite store keeps new experiments' artifacts beside its database."""
    from twinids.tracking.store import artifact_root

    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    root = artifact_root(tracking_uri)
    if root:
        command += ["--default-artifact-root", root]
    return [*command, "--host", host, "--port", str(port), "--workers", str(workers)]


def start_dashboard(
    tracking_uri: str, experiment: str, host: str = "127.0.0.1", port: int | None = None, workers: int = 1
) -> Dashboard:
    """Start the MLflow UI on a tracking store and wait until it answers.

    A remote tracking server (http[s]://) already serves its UI: nothing is started and its address is returned.
    Otherwise `mlflow server` runs in its own process group (so Ctrl-C reaches twinids first, which then stops
    it cleanly), without MLflow's background job runner (GenAI jobs, unused here), logging to `dashboard.log`
    beside a SQLite store.

    Port, host and store are checked, in that order, before MLflow is imported or anything is written.

    Raises:
        TwinIDSError: for a bad or taken port, a host that cannot be listened on, a store that does not exist or
            cannot be read (see `require_store`), or a server that exits or stays silent while starting.
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's INFO lines would precede any refusal
    remote = tracking_uri.startswith(("http://", "https://"))
    if not remote:
        port = choose_port(host, port)
    require_store(tracking_uri)
    experiment_id = install_runs_view(tracking_uri, experiment)
    if remote:
        return Dashboard(None, runs_view_url(tracking_uri, experiment_id) if experiment_id else tracking_uri, None)
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    log_path = _log_path(tracking_uri)
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            server_command(tracking_uri, host, port, workers),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    dashboard = Dashboard(process, runs_view_url(base, experiment_id) if experiment_id else base, log_path)
    try:
        _wait_until_healthy(process, base, log_path)
    except BaseException:
        dashboard.stop()
        raise
    return dashboard


def _log_path(tracking_uri: str) -> Path:
    from twinids.tracking.store import sqlite_database

    database = sqlite_database(tracking_uri)
    folder = database.parent if database else Path.cwd()
    return folder / "dashboard.log"


def _wait_until_healthy(process: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TwinIDSError(f"the MLflow server exited while starting: {_last_line(log_path)} (log: {log_path})")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TwinIDSError(f"the MLflow server did not answer within {START_TIMEOUT_S:.0f} s (log: {log_path})")


def _last_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"
