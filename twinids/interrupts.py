"""Signals that end a command (Ctrl-C, SIGTERM, SIGHUP) become one exception, so every way out is handled alike.

The exception is not a KeyboardInterrupt on purpose: Lightning turns a KeyboardInterrupt into
`sys.exit(1)` and its own SIGTERM handling into a silent exit, while any other exception passes through
its trainer unchanged. The tracking layer ends the run KILLED when it sees it, and the CLI prints one line
and exits with 128 + the signal number, as shells expect.

A signal never lands inside a database write. Raised there, the exception leaves the SQLite connection with
its write lock held (SQLAlchemy closes it while a statement is still open, and SQLite keeps the transaction
of such a "zombie" connection), so the write that marks the run KILLED waits for the lock and fails. A signal
that arrives while the main thread is in SQLAlchemy, Alembic or MLflow's database store is delivered again
moments later (by a SIGALRM timer, which lands at any point of the main thread, unlike a thread that runs when
the main thread waits on SQLite), until the write in progress has ended (at most `DEFER_LIMIT_S`). A signal
that arrives inside a destructor (`__del__`, where Python drops any exception) waits the same way.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Modules whose code runs inside a database transaction (MLflow's SQL store, Optuna's storage via SQLAlchemy).
STORE_MODULES = (
    "sqlalchemy.",
    "alembic.",
    "sqlite3.",
    "mlflow.store.db.",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.dbmodels.",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.model_registry.dbmodels.",
)
REDELIVER_AFTER_S = 0.02
DEFER_LIMIT_S = 60.0  # a write stuck longer than this is interrupted anyway


class JobInterrupted(BaseException):
    """A command was asked to stop by a signal; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class _Pending:
    """The signal waiting for a database write to end, since when, and whether signals are being ignored."""

    signum: int | None = None
    since: float = 0.0
    ignoring: bool = False


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    if _Pending.ignoring:
        return
    if _Pending.signum is None:
        _Pending.signum, _Pending.since = signum, time.monotonic()
    if (in_store_code(frame) or in_destructor(frame)) and time.monotonic() - _Pending.since < DEFER_LIMIT_S:
        signal.signal(signal.SIGALRM, _redeliver)
        signal.setitimer(signal.ITIMER_REAL, REDELIVER_AFTER_S)
        return
    raise stopped_by(_Pending.signum)


def stopped_by(signum: int) -> JobInterrupted:
    """The JobInterrupted that ends the job for `signum`, with any redelivery still pending dropped and its timer
    stopped: a signal that Lightning's own SIGTERM handling already stopped the job for (while ours waited for a
    database write) must not land again in the cleanup, where it would leave the run RUNNING and, with the
    timer still set when Python restores the default SIGALRM handler at exit, end the process by SIGALRM."""
    _Pending.signum = None
    signal.setitimer(signal.ITIMER_REAL, 0)
    return JobInterrupted(signum)


def _redeliver(alarm: int, frame: FrameType | None) -> None:
    """Handle the deferred signal again; a no-op once it was raised."""
    if _Pending.signum is not None:
        _raise_interrupted(_Pending.signum, frame)


def in_store_code(frame: FrameType | None) -> bool:
    """Whether any frame of the stack belongs to a database layer (see `STORE_MODULES`)."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(STORE_MODULES):
            return True
        frame = frame.f_back
    return False


def in_destructor(frame: FrameType | None) -> bool:
    """Whether any frame of the stack is a `__del__`, where Python prints an exception and drops it."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise JobInterrupted in the main thread, outside database writes.

    The SIGALRM handler that redelivers a deferred signal is installed now too, not only when a signal is deferred:
    Lightning's trainer notes every signal's handler when a fit starts and sets them all back when it ends, so a
    handler installed during a fit would be replaced by the default one (which ends the process) while its timer
    is still running.
    """
    _Pending.signum, _Pending.ignoring = None, False
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _raise_interrupted)
    signal.signal(signal.SIGALRM, _redeliver)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore the handled signals inside the block: for the cleanup of a command that is already stopping."""
    before = _Pending.ignoring
    _Pending.ignoring = True
    try:
        yield
    finally:
        _Pending.ignoring = before
