"""Where runs are tracked and opening that store safely: $MLFLOW_TRACKING_URI or an explicit URI, else an
embedded SQLite store, created by one process at a time; a store that cannot be used fails in one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from twinids.errors import TwinIDSError, first_line

DEFAULT_STORE_DIR = "mlruns"
SQLITE_PREFIX = "sqlite:///"
SQLITE_BUSY_TIMEOUT_S = 60.0  # how long the checks wait for another job's write (MLflow's own sessions wait 20 s)
CREATION_LOCK_TIMEOUT_S = 600.0  # creating a store takes ~2 s; many jobs starting together queue behind it
SERVER_TIMEOUT_S = 5.0
# The tracking URI schemes MLflow has a store for ('' and file: its folder store); `postgresql+psycopg2` counts.
STORE_SCHEMES = (
    "",
    "file",
    "sqlite",
    "http",
    "https",
    "postgresql",
    "mysql",
    "mssql",
    "databricks",
    "databricks-uc",
    "uc",
)
# Database tracking URIs: the port a URL without one means, and the driver SQLAlchemy loads for each PostgreSQL scheme
# (2.1 drives a plain postgresql:// with psycopg 3; the `server` extra installs it). MLflow retries a database that
# does not answer for about two minutes, so twinids asks first.
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
POSTGRES_DRIVERS = {"postgresql": "psycopg", "postgresql+psycopg": "psycopg", "postgresql+psycopg2": "psycopg2"}
# MLflow's defaults (7 retries, 120 s timeout) retry an unreachable server for about 4 minutes per request.
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def resolve_tracking_uri(uri: str | None = None, create_folder: bool = True) -> str:
    """The tracking URI to use: the given one, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db.

    With `create_folder` the folder of a SQLite database is created (a command that only reads a store passes False).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        database = Path(DEFAULT_STORE_DIR).resolve() / "mlflow.db"
    elif uri.startswith(SQLITE_PREFIX):
        database = Path(uri.removeprefix(SQLITE_PREFIX)).resolve()
    else:
        return uri
    if not create_folder:
        return f"{SQLITE_PREFIX}{database}"
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TwinIDSError(f"cannot create the tracking store folder {database.parent}: {error.strerror}") from error
    return f"{SQLITE_PREFIX}{database}"


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a SQLite tracking URI, None for any other store."""
    return Path(tracking_uri.removeprefix(SQLITE_PREFIX)) if tracking_uri.startswith(SQLITE_PREFIX) else None


def artifact_root(tracking_uri: str) -> str | None:
    """Artifact folder for new experiments of a SQLite store (beside the database); None lets the server decide."""
    database = sqlite_database(tracking_uri)
    return (database.parent / "artifacts").as_uri() if database else None


def prepare_store(experiment: str, tracking_uri: str | None = None) -> str:
    """Open the tracking store, create it and `experiment` in it if needed, and return the resolved URI.

    A new SQLite store (schema migrations, default experiment) and the experiment are created under a file
    lock beside the database, so jobs started together all keep their runs. `start_run` calls this; a sweep
    calls it once before starting parallel jobs.

    Raises:
        TwinIDSError: if the server does not answer or the store is read-only, corrupt or otherwise unusable.
    """
    uri = check_store(tracking_uri)
    with _creation_lock(sqlite_database(uri)), store_errors(uri):
        _ensure_experiment(uri, experiment)
    return uri


def check_store(tracking_uri: str | None = None, writable: bool = True) -> str:
    """Resolve the tracking URI and check its store answers: a server within seconds, a SQLite file as a database.

    Raises:
        TwinIDSError: naming the store and what is wrong with it.
    """
    uri = resolve_tracking_uri(tracking_uri)
    check_scheme(uri)
    database = sqlite_database(uri)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    elif urlsplit(uri).scheme.split("+")[0] in DATABASE_PORTS:
        check_database(uri)
    elif database is not None and (writable or database.exists()):
        check_sqlite(database, writable)
    return uri


def check_scheme(uri: str) -> None:
    """Refuse a tracking URI whose scheme MLflow has no store for (it would fail deep inside MLflow or SQLAlchemy)."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme not in STORE_SCHEMES:
        raise TwinIDSError(
            f"the tracking URI {_shown(uri)} names no kind of store MLflow knows ('{scheme}://'); use "
            "sqlite:///path/mlflow.db, http(s)://a-tracking-server or a database URL (postgresql, mysql, mssql)"
        )


def check_server(uri: str) -> None:
    """Refuse a tracking server that does not answer within seconds, and bound MLflow's own retries."""
    import urllib.error
    import urllib.request

    for name, value in HTTP_SETTINGS.items():
        os.environ.setdefault(name, value)
    parts = urlsplit(uri)
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=SERVER_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return  # it answered: a server or proxy without /health is still reachable
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise TwinIDSError(
            f"cannot reach the MLflow tracking server at {_shown(uri)} ({reason}); start it, or point "
            "MLFLOW_TRACKING_URI (or --tracking-uri) at a running one"
        ) from error


def check_database(uri: str) -> None:
    """Refuse a database URL whose driver is not installed or whose server does not accept a connection within
    seconds (MLflow itself would retry for minutes, printing each retry).

    Raises:
        TwinIDSError: naming the URL (password hidden) and what to do.
    """
    import importlib.util
    import socket

    parts = urlsplit(uri)
    driver = POSTGRES_DRIVERS.get(parts.scheme)
    if driver is not None and importlib.util.find_spec(driver) is None:
        raise TwinIDSError(
            f"the tracking URI {_shown(uri)} needs the PostgreSQL driver '{driver}', which is not installed; "
            "install it with `pip install 'twinids[server]'`"
        )
    try:
        host, port = parts.hostname, parts.port or DATABASE_PORTS[parts.scheme.split("+")[0]]
    except ValueError as error:
        raise TwinIDSError(f"the tracking URI {_shown(uri)} is not a valid database URL ({error})") from error
    if not host:
        return  # a Unix socket (or the driver's own default): MLflow connects as the URL says
    try:
        socket.create_connection((host, port), timeout=SERVER_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or first_line(error) or type(error).__name__
        raise TwinIDSError(
            f"cannot reach the database of the tracking URI {_shown(uri)} at {host}:{port} ({reason}); start it, "
            "or point MLFLOW_TRACKING_URI (or --tracking-uri) at a running store"
        ) from error


def check_sqlite(database: Path, writable: bool = True) -> None:
    """Refuse a SQLite store that is not a database or, when `writable`, cannot be written (a rolled-back probe)."""
    import sqlite3

    try:
        connection = sqlite3.connect(database, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if writable:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("CREATE TABLE twinids_write_probe (x)")  # needs the journal, like a real write
                connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as error:
        message = _explain_sqlite(database, str(error))
        raise TwinIDSError(message or f"cannot open the tracking store {database} ({error})") from error


def _explain_sqlite(database: Path, reason: str) -> str | None:
    """One line for the SQLite failures a user can fix, None for any other."""
    if "readonly" in reason:
        return (
            f"the tracking store {database} is read-only; make it writable or set MLFLOW_TRACKING_URI "
            "(or --tracking-uri) to another store"
        )
    if "not a database" in reason or "malformed" in reason:
        return (
            f"the tracking store {database} is not a usable SQLite database ({reason}); move it aside or set "
            "MLFLOW_TRACKING_URI (or --tracking-uri) to another store"
        )
    if "locked" in reason:
        return f"the tracking store {database} stayed locked by another process for {SQLITE_BUSY_TIMEOUT_S:.0f} s"
    if "unable to open" in reason:
        return f"cannot open the tracking store {database}; check the file and its folder exist and are writable"
    return None


@contextmanager
def store_errors(tracking_uri: str) -> Iterator[None]:
    """Turn a failure inside the tracking store (MLflow, SQLAlchemy, I/O) into one TwinIDSError naming the store."""
    try:
        yield
    except TwinIDSError:
        raise
    except Exception as error:
        database = sqlite_database(tracking_uri)
        message = _explain_sqlite(database, str(error)) if database else None
        shown = _shown(tracking_uri)
        raise TwinIDSError(message or f"the tracking store {shown} failed: {first_line(error)}") from error


@contextmanager
def _creation_lock(database: Path | None) -> Iterator[None]:
    """Hold `<database>.lock` (SQLite stores only): MLflow's schema migrations race when two processes create one."""
    if database is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(f"{database}.lock", timeout=CREATION_LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout as error:
        raise TwinIDSError(
            f"waited {CREATION_LOCK_TIMEOUT_S:.0f} s for another process creating the tracking store {database} "
            f"(it holds {lock.lock_file})"
        ) from error
    except OSError as error:
        message = f"cannot lock the tracking store {database} ({error.strerror}); is its folder writable?"
        raise TwinIDSError(message) from error
    try:
        yield
    finally:
        lock.release()


def _ensure_experiment(tracking_uri: str, name: str) -> None:
    """Create the experiment with its artifacts beside a SQLite store, so runs are portable with the store."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise TwinIDSError(
                f"experiment '{name}' is deleted in the tracking store {_shown(tracking_uri)}; restore it with "
                f"`mlflow experiments restore --experiment-id {found.experiment_id}` or set tracking.mlflow_experiment"
            )
        return
    root = artifact_root(tracking_uri)
    try:
        client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":  # a server's other client got there first: fine
            raise


def _shown(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
