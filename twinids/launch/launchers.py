"""Where a sweep's jobs run: a pool of long-lived worker processes on this machine, or submitit (debug, local, SLURM;
see `submitit_launcher`).

Every launcher starts jobs, waits until some end, and stops the running ones when the sweep is interrupted;
the sweep keeps at most `capacity` jobs started at once.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from twinids.cpu_policy import usable_cores, wait_policy
from twinids.errors import TwinIDSError
from twinids.launch.sweep_jobs import (
    FAILED,
    KILLED,
    JobOutcome,
    SweepJob,
    ThreadPolicy,
    run_job_in_worker,
    start_worker,
    worker_state,
)

LAUNCHERS = ("pool", "debug", "local", "slurm")
STOP_GRACE_S = 60.0  # how long stopped jobs get to end their runs KILLED before their processes are killed


def thread_policy(parallel_jobs: int, cores: int | None = None) -> ThreadPolicy:
    """Threads and OpenMP wait policy for one of `parallel_jobs` processes sharing this machine's cores.

    Each job gets its share of the cores; the wait policy is `twinids.cpu_policy.wait_policy`'s: jobs sharing the
    cores get PASSIVE; a lone job (None here) decides in its worker from how busy the cores are right then.
    """
    cores = cores or usable_cores()
    return ThreadPolicy(max(1, cores // parallel_jobs), wait_policy(parallel_jobs))


class Launcher(Protocol):
    """Starts jobs and reports how they ended."""

    capacity: int

    def start(self, job: SweepJob, tags: Mapping[str, str]) -> None:
        """Start running a job (returns at once, except for a launcher that runs it right here)."""
        ...

    def wait(self) -> list[JobOutcome]:
        """Block until at least one started job has ended; return the outcomes of those that have."""
        ...

    def stop(self, signum: int) -> list[JobOutcome]:
        """Stop every started job (its run ends KILLED) and return what is known of them."""
        ...

    def close(self) -> None:
        """Release processes and executors."""
        ...


class PoolLauncher:
    """A pool of `capacity` worker processes started once (spawn), each importing torch, Lightning and MLflow once.

    A worker that dies (a hard crash) fails the jobs it held; the pool is replaced and the sweep goes on.
    """

    def __init__(self, capacity: int, policy: ThreadPolicy) -> None:
        import multiprocessing

        self.capacity = capacity
        self.policy = policy
        self.others = set(multiprocessing.active_children())  # processes that are not this pool's workers
        self.executor = self._new_executor()
        self.running: dict[Any, SweepJob] = {}

    def workers(self) -> list[Any]:
        """The pool's live worker processes."""
        import multiprocessing

        return [process for process in multiprocessing.active_children() if process not in self.others]

    def warm_up(self) -> None:
        """Start every worker now (they import torch, Lightning and MLflow while the sweep plans its jobs)."""
        for _ in range(self.capacity):
            self.executor.submit(worker_state)

    def discard(self) -> None:
        """End the workers at once, whatever they are doing (nothing to run, or planning failed)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in self.workers():
            process.terminate()
            process.join(timeout=5)

    def _new_executor(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.capacity, mp_context=context, initializer=start_worker, initargs=(self.policy,))

    def start(self, job: SweepJob, tags: Mapping[str, str]) -> None:
        """Queue the job on the pool (a free worker takes it at once: the sweep never starts more than capacity)."""
        future = self.executor.submit(run_job_in_worker, job, dict(tags))
        self.running[future] = job

    def wait(self) -> list[JobOutcome]:
        """Outcomes of the jobs that ended; a broken pool fails its jobs and is replaced."""
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_for
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait_for(list(self.running), return_when=FIRST_COMPLETED)
        outcomes = []
        broken = False
        for future in done:
            job = self.running.pop(future)
            try:
                outcomes.append(future.result())
            except BrokenProcessPool:
                broken = True
                outcomes.append(JobOutcome(job, FAILED, message="its worker process died (crash or killed)"))
            except Exception as error:  # the job's result could not come back (e.g. it would not pickle)
                outcomes.append(JobOutcome(job, FAILED, message=f"{type(error).__name__}: {error}"))
        if broken:
            for future, job in list(self.running.items()):  # the pool fails every job it still held
                self.running.pop(future)
                outcomes.append(JobOutcome(job, FAILED, message="its worker pool broke (another job crashed it)"))
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._new_executor()
        return outcomes

    def stop(self, signum: int) -> list[JobOutcome]:
        """Signal every worker (the running jobs end their runs KILLED), collect what they report, shut down."""
        from concurrent.futures import wait as wait_for

        processes = self.workers()
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        done, _ = wait_for(list(self.running), timeout=STOP_GRACE_S)
        outcomes = []
        for future, job in self.running.items():
            try:
                outcome = future.result(timeout=0) if future in done else None
            except Exception:
                outcome = None
            outcomes.append(outcome or JobOutcome(job, KILLED, message=f"stopped by {signal.Signals(signum).name}"))
        self.running.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        return outcomes

    def close(self) -> None:
        """Stop the workers once their queue is empty."""
        self.executor.shutdown(wait=True, cancel_futures=True)


def check_launcher(name: str, parallel_jobs: int, tracking_uri: str | None = None) -> None:
    """Refuse launcher settings that cannot work; a sweep calls it before composing jobs or opening the store.

    `tracking_uri` None means not known yet (the jobs' config decides it): the SLURM check then waits for it.

    Raises:
        TwinIDSError: for an unknown launcher, fewer than one job, or SLURM jobs tracked to a local store.
    """
    if name not in LAUNCHERS:
        raise TwinIDSError(f"--launcher must be one of {', '.join(LAUNCHERS)}; got '{name}'")
    if isinstance(parallel_jobs, bool) or not isinstance(parallel_jobs, int) or parallel_jobs < 1:
        raise TwinIDSError(f"--jobs must be 1 or more; got {parallel_jobs}")
    if name == "slurm" and tracking_uri is not None and not tracking_uri.startswith(("http://", "https://")):
        raise TwinIDSError(
            "--launcher slurm: SLURM jobs run on other nodes and must track to a shared MLflow server; "
            "pass --tracking-uri http://<host>:<port> (start one with `mlflow server`)"
        )


def make_launcher(
    name: str, parallel_jobs: int, tracking_uri: str, slurm: Any = None, folder: Path | None = None
) -> Launcher:
    """The launcher `--launcher` names, running up to `parallel_jobs` jobs at once.

    Raises:
        TwinIDSError: for an unknown launcher, fewer than one job, or SLURM jobs tracked to a local store.
    """
    check_launcher(name, parallel_jobs, tracking_uri)
    if name == "pool":
        return PoolLauncher(parallel_jobs, thread_policy(parallel_jobs))
    from twinids.launch.submitit_launcher import SlurmSettings, SubmititLauncher, slurm_parameters

    if folder is None:  # debug jobs leave only logs nobody reads; local and SLURM logs stay where the user looks
        folder = Path(tempfile.gettempdir()) / "twinids-submitit-debug" if name == "debug" else Path("submitit")
    if name == "slurm":
        slurm = slurm or SlurmSettings()
        policy = ThreadPolicy(max(1, slurm.cpus_per_job), None)  # each job owns its allocation's cores
        return SubmititLauncher("slurm", parallel_jobs, policy, slurm.folder, slurm_parameters(slurm))
    parameters = {"timeout_min": 24 * 60} if name == "local" else {}
    return SubmititLauncher(name, parallel_jobs, thread_policy(parallel_jobs), folder, parameters)
