"""One job of a sweep and how it runs: in this process, or in a worker process that imports once and runs many.

Kept free of torch, Lightning and MLflow at import time: a fresh worker must set its OpenMP wait policy in
the environment before torch loads (OpenMP reads it once, when its runtime starts).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from twinids.cpu_policy import (
    MEASURED_BUSY_ENV,
    SPIN_COUNT_ENV,
    WAIT_POLICY_ENV,
    apply_wait_policy,
    replace_wait_settings,
)
from twinids.tracking.config_hash import CONFIG_HASH_TAG

FINISHED, FAILED, KILLED, SKIPPED = "FINISHED", "FAILED", "KILLED", "SKIPPED"
ATTEMPT_TAG = "twinids.sweep_attempt"  # one token per submitted job: finds its run after a crash or a kill
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class SweepJob:
    """One training job of a sweep: its plain overrides, its resolved config and that config's hash."""

    number: int  # 1-based position in the sweep's plan
    overrides: list[str]
    config: dict[str, Any]  # resolved, so a worker (or a SLURM node) need not compose it again
    config_hash: str
    command: str = "train"  # train | federate: the job's command, whose config (train.yaml, federate.yaml) it is

    def label(self) -> str:
        """The job's overrides as one line (how `--dry-run` and the summary show it)."""
        return " ".join(self.overrides) or "(defaults)"


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: FINISHED, FAILED, KILLED or SKIPPED (an earlier run already holds its result)."""

    job: SweepJob
    status: str
    run_id: str | None = None
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def line(self, width: int = 3) -> str:
        """One line for the sweep's output: number, status, overrides, run id and the headline or the error."""
        run = f"  run {self.run_id}" if self.run_id else ""
        detail = f"  {self.message}" if self.message else ""
        return f"{self.job.number:>{width}}  {self.status:<8}  {self.job.label()}{run}{detail}"


@dataclass(frozen=True)
class ThreadPolicy:
    """How a job process uses the cores: torch intra-op threads and the OpenMP wait policy (None: OpenMP's default)."""

    threads: int
    wait_policy: str | None


def prepare_process(policy: ThreadPolicy) -> None:
    """Apply a thread policy to this process; the wait policy only takes effect if torch is not loaded yet.

    Called by a worker before anything imports torch. In a process where torch is already loaded (a debug
    run in the command's own process) only the thread count changes.
    """
    if "torch" not in sys.modules:  # an inherited GOMP_SPINCOUNT would override PASSIVE: replace both settings
        replace_wait_settings({} if policy.wait_policy is None else {WAIT_POLICY_ENV: policy.wait_policy})
        if policy.wait_policy is None:  # a lone job decides as a lone command does, from the cores' use now
            apply_wait_policy()
    import torch

    torch.set_num_threads(policy.threads)


def start_worker(policy: ThreadPolicy) -> None:
    """Initializer of a pool worker: thread policy, the heavy imports done once, and signals that stop a job.

    The first SIGINT/SIGTERM/SIGHUP ends the running job KILLED (through `JobInterrupted`); later ones are
    ignored so the run's final status is written. An idle worker simply exits.
    """
    prepare_process(policy)
    import mlflow  # noqa: F401
    import pytorch_lightning  # noqa: F401

    from twinids.training.job import quiet_libraries
    from twinids.training.train import train  # noqa: F401

    quiet_libraries()
    _install_worker_signals()


_job_running = False


def _install_worker_signals() -> None:
    from twinids.interrupts import HANDLED_SIGNALS, JobInterrupted

    def stop(signum: int, frame: Any) -> None:
        for handled in HANDLED_SIGNALS:  # a no-op, not SIG_IGN: a signal already pending would print a race warning
            signal.signal(handled, ignore_signal)
        if _job_running:
            raise JobInterrupted(signum)
        raise SystemExit(128 + signum)

    for signum in HANDLED_SIGNALS:
        signal.signal(signum, stop)


def child_tags(job: SweepJob, parent_run_id: str, attempt: str) -> dict[str, str]:
    """The tags of a job's run: its sweep's parent run, its config hash and this attempt's token."""
    return {
        PARENT_TAG: parent_run_id,
        CONFIG_HASH_TAG: job.config_hash,
        ATTEMPT_TAG: attempt,
        "twinids.sweep_job": str(job.number),
    }


def ignore_signal(signum: int, frame: Any) -> None:
    """A signal handler that does nothing: lets a stopping process finish writing its runs' final status."""


def run_job(job: SweepJob, tags: dict[str, str]) -> JobOutcome:
    """Run one job (train, or federate) in this process and say how it ended; a user error or a crash is a FAILED
    outcome.

    Ctrl-C and signals (`JobInterrupted`, KeyboardInterrupt) are not caught: the run ends KILLED and the
    exception goes on to stop the sweep.
    """
    from omegaconf import OmegaConf

    from twinids.errors import TwinIDSError, first_line

    cfg = OmegaConf.create(job.config)
    OmegaConf.set_struct(cfg, True)
    try:
        if job.command == "federate":
            from twinids.federation.federate_job import federate

            result = federate(cfg, job.overrides, tags=tags)
        else:
            from twinids.training.train import train

            result = train(cfg, job.overrides, tags=tags)
    except TwinIDSError as error:
        return JobOutcome(job, FAILED, message=str(error))
    except Exception as error:  # a crash of one job must not end the sweep
        return JobOutcome(job, FAILED, message=f"{type(error).__name__}: {first_line(error)}")
    headline = result.metrics.get("test/f1_macro")
    message = f"test/f1_macro {headline:.4f}" if headline is not None else ""
    timings = dict(getattr(result, "timings", {}))
    return JobOutcome(job, FINISHED, result.run_id, message, dict(result.metrics), timings)


def run_job_in_worker(job: SweepJob, tags: dict[str, str], policy: ThreadPolicy | None = None) -> JobOutcome:
    """`run_job` in a worker process (pool, submitit): a signal ends the job KILLED and is reported, not raised.

    With `policy` (a submitit job, which starts fresh for each job) the process is prepared first.
    """
    global _job_running
    from twinids.interrupts import JobInterrupted

    if policy is not None:
        start_worker(policy)
    _job_running = True
    try:
        return run_job(job, tags)
    except (JobInterrupted, KeyboardInterrupt) as stop:
        return JobOutcome(job, KILLED, message=f"interrupted by {stop or 'SIGINT'}")
    finally:
        _job_running = False
        _install_worker_signals()  # re-armed: a worker that lost one job to a signal can still be stopped later


def worker_state() -> dict[str, Any]:
    """What this process runs jobs with: its pid, OpenMP wait settings and torch threads (to check a pool)."""
    import torch

    return {
        "pid": os.getpid(),
        "wait_policy": os.environ.get(WAIT_POLICY_ENV),
        "spin_count": os.environ.get(SPIN_COUNT_ENV),
        "busy_cores": os.environ.get(MEASURED_BUSY_ENV),
        "threads": torch.get_num_threads(),
    }
