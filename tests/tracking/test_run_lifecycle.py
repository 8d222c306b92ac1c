"""A run ends FINISHED, FAILED or KILLED by how its block is left; a resumed run continues under the same id."""

from __future__ import annotations

import signal
import time

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from twinids.interrupts import HANDLED_SIGNALS, JobInterrupted, install_signal_handlers
from twinids.tracking.run import start_run


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def status(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.status


def test_a_run_left_by_an_error_is_failed_and_by_ctrl_c_killed(uri):
    with pytest.raises(ValueError), start_run("life", uri) as failed:
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), start_run("life", uri) as killed:
        raise KeyboardInterrupt
    assert (status(uri, failed.run_id), status(uri, killed.run_id)) == ("FAILED", "KILLED")


def test_a_resumed_run_keeps_its_id_name_and_metrics_and_finishes(uri):
    with pytest.raises(KeyboardInterrupt), start_run("life", uri, run_name="long") as first:
        first.log_metrics({"train/loss": 1.0}, step=0)
        raise KeyboardInterrupt
    with start_run("life", uri, run_id=first.run_id) as resumed:
        assert status(uri, first.run_id) == "RUNNING"
        resumed.log_metrics({"train/loss": 0.5}, step=1)
    run = MlflowClient(uri).get_run(first.run_id)
    assert (resumed.run_id, run.info.run_name, run.info.status) == (first.run_id, "long", "FINISHED")
    history = MlflowClient(uri).get_metric_history(first.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


@pytest.fixture
def cli_signal_handlers():
    """The CLI's handlers for SIGINT, SIGTERM and SIGHUP, restored to pytest's afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in (*HANDLED_SIGNALS, signal.SIGALRM)}
    install_signal_handlers()
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_signal_during_a_metric_write_waits_for_the_write_and_the_run_ends_killed(uri, cli_signal_handlers):
    # The signal arrives while SQLAlchemy inserts the metric, its SQLite write lock held: raised there, the
    # connection kept the lock and the KILLED write waited 20 s for it, then failed (the run stayed RUNNING).
    def signal_inside_the_insert(connection, cursor, statement, *args) -> None:
        if statement.startswith("INSERT INTO metrics") and not sent:
            sent.append(True)
            signal.raise_signal(signal.SIGHUP)

    sent: list[bool] = []
    began = time.monotonic()
    event.listen(Engine, "before_cursor_execute", signal_inside_the_insert)
    try:
        with pytest.raises(JobInterrupted), start_run("life", uri) as run:
            run.log_metrics({"train/loss": 1.0}, step=0)
            while True:  # training goes on until the deferred signal is raised
                time.sleep(0.01)
    finally:
        event.remove(Engine, "before_cursor_execute", signal_inside_the_insert)
    assert sent and status(uri, run.run_id) == "KILLED"
    assert [m.value for m in MlflowClient(uri).get_metric_history(run.run_id, "train/loss")] == [1.0]
    assert time.monotonic() - began < 15  # well under SQLite's 20 s wait for a lock


def test_the_redelivery_timer_survives_a_library_that_restores_every_handler_it_found(cli_signal_handlers):
    # Lightning notes every signal's handler when a fit starts and sets them all back when it ends. A signal
    # deferred during a fit armed a SIGALRM timer whose handler the fit's end replaced by the default one:
    # `twinids tune` stopped by SIGTERM then died of SIGALRM (exit -14) without its line.
    from pytorch_lightning.trainer.connectors.signal_connector import _SignalConnector

    found_at_fit_start = _SignalConnector._get_current_signal_handlers()
    signal.signal(signal.SIGALRM, lambda *_: None)  # anything set during the fit
    for signum, handler in found_at_fit_start.items():  # the fit ends: everything as it was
        if handler is not None:
            signal.signal(signum, handler)
    assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL  # a timer left running cannot end the process


def test_a_signal_that_lands_in_a_destructor_is_raised_after_it(cli_signal_handlers):
    # Raised inside `__del__` (a Lightning profiler's, in CI), the exception was printed and dropped: the stopped
    # `twinids tune` went on until Lightning's own SIGTERM handling ended it with the wrong exit code.
    class SlowToDelete:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGHUP)
            time.sleep(0.1)  # the redelivery timer fires while the destructor still runs

    with pytest.raises(JobInterrupted):
        SlowToDelete()  # deleted at once
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)


def test_a_signal_lightning_already_stopped_the_job_for_is_not_delivered_again(cli_signal_handlers):
    # SIGTERM deferred in a store write, then Lightning's own SIGTERM handling stopped the fit first: the pending
    # redelivery landed again in the cleanup (the run stayed RUNNING), and its timer, still set when Python put
    # back the default SIGALRM handler at exit, ended the process by SIGALRM (exit -14; CI simulation).
    from twinids.interrupts import stopped_by

    class DeleteSlowly:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)  # deferred: a destructor drops exceptions

    DeleteSlowly()
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # the redelivery is set
    stop = stopped_by(signal.SIGTERM)  # what LightningDetector.fit raises for Lightning's SIGTERMException
    assert stop.exit_code == 143
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.1)  # nothing is delivered again
