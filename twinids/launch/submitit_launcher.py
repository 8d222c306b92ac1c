"""Sweep jobs through submitit: `debug` runs them in this process, `local` as subprocesses, `slurm` as SLURM jobs.

SLURM jobs are configured from `SlurmSettings` (partition, time, CPUs, memory, GPUs); each job is its own
process (it pays the imports once per job) and must track to an MLflow server every node reaches.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinids.errors import TwinIDSError, require_integer, require_number
from twinids.launch.sweep_jobs import FAILED, KILLED, JobOutcome, SweepJob, ThreadPolicy, run_job, run_job_in_worker

POLL_S = 0.5  # how often submitted jobs are polled


@dataclass(frozen=True)
class SlurmSettings:
    """What each SLURM job asks for; None leaves a setting to the cluster's default."""

    partition: str | None = None
    timeout_min: int = 60
    cpus_per_job: int = 2
    mem_gb: float | None = None
    gpus_per_job: int = 0
    folder: Path = Path("submitit")

    def __post_init__(self) -> None:
        """Refuse requests SLURM would reject only after the jobs were composed (or silently round)."""
        require_integer(self.timeout_min, "--timeout-min", 1)
        require_integer(self.cpus_per_job, "--cpus", 1)
        require_integer(self.gpus_per_job, "--gpus", 0)
        if self.mem_gb is not None:
            require_number(self.mem_gb, "--mem-gb", 0, open_low=True)


def slurm_parameters(settings: SlurmSettings, name: str = "twinids-sweep") -> dict[str, Any]:
    """The `submitit.AutoExecutor.update_parameters` arguments for SLURM jobs with these settings."""
    parameters: dict[str, Any] = {
        "name": name,
        "timeout_min": int(settings.timeout_min),
        "cpus_per_task": int(settings.cpus_per_job),
        "gpus_per_node": int(settings.gpus_per_job),
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if settings.mem_gb is not None:
        parameters["mem_gb"] = float(settings.mem_gb)
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    return parameters


class SubmititLauncher:
    """Jobs through `submitit.AutoExecutor`: `debug` runs them in this process, `local` as subprocesses, `slurm`
    as SLURM jobs (each its own process, so each pays the imports; SLURM jobs must track to a shared server)."""

    def __init__(self, cluster: str, capacity: int, policy: ThreadPolicy, folder: Path, parameters: dict) -> None:
        import submitit

        self.capacity = capacity
        self.cluster = cluster
        self.policy = None if cluster == "debug" else policy
        try:
            self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        except RuntimeError as error:  # submitit's SLURM executor refuses a machine without srun
            raise TwinIDSError(f"--launcher {cluster}: {error}; run the sweep on the cluster's login node") from error
        self.executor.update_parameters(**parameters)
        self.running: dict[Any, SweepJob] = {}

    def start(self, job: SweepJob, tags: Mapping[str, str]) -> None:
        """Submit the job (a `debug` job runs when it is first waited on)."""
        if self.cluster == "debug":
            submitted = self.executor.submit(run_job, job, dict(tags))
        else:
            submitted = self.executor.submit(run_job_in_worker, job, dict(tags), self.policy)
        self.running[submitted] = job

    def wait(self) -> list[JobOutcome]:
        """Poll the submitted jobs until some have ended; their result, or FAILED if the job process died."""
        while True:
            ended = [submitted for submitted in self.running if submitted.done()]
            if ended:
                return [self._outcome(submitted) for submitted in ended]
            time.sleep(POLL_S)

    def _outcome(self, submitted: Any) -> JobOutcome:
        job = self.running.pop(submitted)
        try:
            return submitted.result()
        except Exception as error:  # submitit wraps a dead or failed job process in its own errors
            text = str(error).strip().splitlines()
            return JobOutcome(job, FAILED, message=f"submitit job {submitted.job_id} failed: {text[0] if text else ''}")

    def stop(self, signum: int) -> list[JobOutcome]:
        """Cancel the submitted jobs; their runs end KILLED (a cancelled SLURM job gets SIGTERM first)."""
        outcomes = []
        for submitted, job in self.running.items():
            submitted.cancel(check=False)
            outcomes.append(JobOutcome(job, KILLED, message=f"cancelled ({signal.Signals(signum).name})"))
        self.running.clear()
        return outcomes

    def close(self) -> None:
        """Nothing is held between jobs."""
