"""`twinids sweep`: run every job of a sweep as a child of one MLflow parent run, skipping jobs already done.

A job is done when a FINISHED training run carries its config hash (`twinids.config_hash`), so re-running
an interrupted sweep runs only what is missing (`force` runs everything again). A job that fails ends its
run FAILED and the sweep goes on; a signal stops the sweep, and every running child and the parent end KILLED.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from twinids.errors import TwinIDSError
from twinids.interrupts import HANDLED_SIGNALS, JobInterrupted
from twinids.launch.launchers import Launcher, check_launcher, make_launcher
from twinids.launch.submitit_launcher import SlurmSettings
from twinids.launch.sweep_jobs import (
    FAILED,
    FINISHED,
    KILLED,
    SKIPPED,
    JobOutcome,
    SweepJob,
    child_tags,
    ignore_signal,
)
from twinids.launch.sweep_runs import settle_outcome

SWEEP_HASH_TAG = "twinids.sweep_hash"
JOBS_ARTIFACT = "sweep/jobs.csv"
OVERRIDES_ARTIFACT = "sweep/overrides.txt"


@dataclass(frozen=True)
class SweepSettings:
    """How to run a sweep: its overrides, where jobs run and how many at once, and where runs are tracked."""

    overrides: Sequence[str]
    parallel_jobs: int = 1
    launcher: str = "pool"
    force: bool = False
    tracking_uri: str | None = None
    slurm: SlurmSettings | None = None
    submitit_folder: Path | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # extra tags on the parent run (e.g. the table it feeds)
    command: str = "train"  # each job's command: train, or federate (its jobs compose configs/federate.yaml)


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: its parent run, one outcome per job in plan order, and its wall time."""

    parent_run_id: str
    outcomes: list[JobOutcome]
    wall_s: float

    def counts(self) -> dict[str, int]:
        """Jobs per status: finished, failed, skipped and (after an interruption) killed."""
        statuses = (FINISHED, FAILED, SKIPPED, KILLED)
        return {status: sum(outcome.status == status for outcome in self.outcomes) for status in statuses}

    def line(self) -> str:
        """`20 jobs: 18 finished, 1 failed, 1 skipped in 42.0 s (parent run ...)`."""
        counts = self.counts()
        parts = [f"{counts[s]} {s.lower()}" for s in (FINISHED, FAILED, SKIPPED)]
        if counts[KILLED]:
            parts.append(f"{counts[KILLED]} killed")
        total = len(self.outcomes)
        jobs = f"{total} job{'s' * (total != 1)}"
        return f"{jobs}: {', '.join(parts)} in {self.wall_s:.1f} s (parent run {self.parent_run_id})"


class _JobsFailed(Exception):
    """Raised inside the parent run so that it ends FAILED when any job failed; caught right outside it."""


def plan_jobs(
    overrides: Sequence[str], tracking_uri: str | None = None, command: str = "train"
) -> tuple[list[SweepJob], str, str]:
    """Expand and compose every job; return the jobs, the tracking URI and the experiment they share.

    Every job is composed here, so an unknown key or option fails before anything runs.

    Raises:
        TwinIDSError: for overrides that do not expand or compose, or jobs tracked to different places.
    """
    from omegaconf import OmegaConf

    from twinids.config import compose
    from twinids.launch.sweep_plan import expand_sweep
    from twinids.tracking.config_hash import config_hash
    from twinids.tracking.store import resolve_tracking_uri

    jobs, places = [], set()
    for number, job_overrides in enumerate(expand_sweep(list(overrides)), 1):
        try:
            cfg = compose(job_overrides, config_name=command)
        except TwinIDSError as error:
            raise TwinIDSError(f"sweep job {number} ({' '.join(job_overrides)}): {error}") from None
        uri = resolve_tracking_uri(tracking_uri or cfg.tracking.uri)
        cfg.tracking.uri = uri
        cfg.paths.output_dir = str(Path(str(cfg.paths.output_dir)).resolve())
        places.add((uri, str(cfg.tracking.mlflow_experiment)))
        container = OmegaConf.to_container(cfg, resolve=True)
        jobs.append(SweepJob(number, list(job_overrides), container, config_hash(cfg), command))  # type: ignore[arg-type]
    if len(places) > 1:
        raise TwinIDSError("the jobs of one sweep must track to one store and experiment; sweep over the rest only")
    uri, experiment = places.pop()
    return jobs, uri, experiment


def run_sweep(settings: SweepSettings, on_outcome: Callable[[JobOutcome], None] = lambda outcome: None) -> SweepSummary:
    """Run the jobs of a sweep that are not done yet, each a child run of one parent; report each as it ends.

    Raises:
        TwinIDSError: for a sweep that cannot be planned or a store that cannot be used (before any job runs).
        JobInterrupted: after a signal, once the running jobs and the parent run have ended KILLED.
    """
    from twinids.launch.sweep_runs import earlier_parent, finished_runs_by_hash
    from twinids.tracking.run import start_run
    from twinids.tracking.store import prepare_store

    began = time.perf_counter()
    check_launcher(settings.launcher, settings.parallel_jobs)  # before composing every job and opening the store
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no store-creation chatter in the sweep's output
    early = make_launcher("pool", settings.parallel_jobs, "") if settings.launcher == "pool" else None
    if early is not None:
        early.warm_up()  # workers import torch, Lightning and MLflow while the jobs are planned here
    try:
        jobs, uri, experiment = plan_jobs(settings.overrides, settings.tracking_uri, settings.command)
        check_launcher(settings.launcher, settings.parallel_jobs, uri)  # SLURM jobs need a server the nodes reach
        uri = prepare_store(experiment, uri)  # created once, before any job process opens it
        done = (
            {}
            if settings.force
            else finished_runs_by_hash(uri, experiment, [job.config_hash for job in jobs], settings.command)
        )
        sweep_hash = hashlib.sha256(" ".join(job.config_hash for job in jobs).encode()).hexdigest()[:16]
        earlier = None if settings.force else earlier_parent(uri, experiment, "sweep", SWEEP_HASH_TAG, sweep_hash)
        outcomes = {
            job.number: JobOutcome(job, SKIPPED, done[job.config_hash], "finished before")
            for job in jobs
            if job.config_hash in done
        }
        missing = [job for job in jobs if job.number not in outcomes]
        launcher = early  # made before the parent run, so a launcher that cannot work leaves no run behind
        if missing and launcher is None:
            where = (settings.launcher, settings.parallel_jobs, uri, settings.slurm, settings.submitit_folder)
            launcher = make_launcher(*where)
    except BaseException:
        if early is not None:
            early.discard()
        raise
    if not missing and early is not None:
        early.discard()
        launcher = None
    tags = {"twinids.job": "sweep", SWEEP_HASH_TAG: sweep_hash, "twinids.launcher": settings.launcher, **settings.tags}
    try:
        with start_run(experiment, uri, None, tags, run_id=earlier) as parent:
            if earlier is None:
                parent.log_params({"sweep.overrides": " ".join(settings.overrides)[:6000], "sweep.jobs": len(jobs)})
                parent.log_text("\n".join(settings.overrides) + "\n", OVERRIDES_ARTIFACT)
            for outcome in outcomes.values():
                on_outcome(outcome)
            try:
                if launcher is not None:
                    policy = getattr(launcher, "policy", None)
                    if policy is not None:  # what the jobs' time/* metrics were measured under
                        waits = policy.wait_policy or "OpenMP default"
                        parent.set_tags({"twinids.threads_per_job": policy.threads, "twinids.wait_policy": waits})
                    _schedule(launcher, missing, parent.run_id, uri, experiment, outcomes, on_outcome)
            finally:
                _log_results(parent, jobs, outcomes)
            if any(outcome.status == FAILED for outcome in outcomes.values()):
                raise _JobsFailed
    except _JobsFailed:
        pass
    ordered = [outcomes[job.number] for job in jobs]
    return SweepSummary(parent.run_id, ordered, time.perf_counter() - began)


def _schedule(
    launcher: Launcher,
    jobs: list[SweepJob],
    parent_run_id: str,
    uri: str,
    experiment: str,
    outcomes: dict[int, JobOutcome],
    on_outcome: Callable[[JobOutcome], None],
) -> None:
    """Keep up to `launcher.capacity` jobs running until all have ended; on a signal stop them all, then re-raise."""
    pending = list(reversed(jobs))
    attempts: dict[int, str] = {}  # job number -> attempt token of the running jobs

    def finish(outcome: JobOutcome) -> None:
        token = attempts.pop(outcome.job.number, "")
        outcome = settle_outcome(outcome, token, parent_run_id, uri, experiment)
        outcomes[outcome.job.number] = outcome
        on_outcome(outcome)

    try:
        while pending or attempts:
            while pending and len(attempts) < launcher.capacity:
                job = pending.pop()
                attempts[job.number] = uuid.uuid4().hex
                launcher.start(job, child_tags(job, parent_run_id, attempts[job.number]))
            for outcome in launcher.wait():
                finish(outcome)
    except (JobInterrupted, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, JobInterrupted) else int(signal.SIGINT)
        previous = {s: signal.signal(s, ignore_signal) for s in HANDLED_SIGNALS}  # let the runs end KILLED
        try:
            for outcome in launcher.stop(signum):
                finish(outcome)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        raise
    finally:
        launcher.close()


def _log_results(parent: object, jobs: list[SweepJob], outcomes: dict[int, JobOutcome]) -> None:
    """The parent run's record of every job: counts as metrics, and one CSV row per job."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["job", "status", "run_id", "config_hash", "overrides", "message"])
    counts = dict.fromkeys((FINISHED, FAILED, SKIPPED, KILLED), 0)
    for job in jobs:
        outcome = outcomes.get(job.number)
        status = outcome.status if outcome else "NOT_RUN"
        counts[status] = counts.get(status, 0) + 1
        writer.writerow([job.number, status, outcome.run_id if outcome else "", job.config_hash, job.label(),
                         outcome.message if outcome else ""])  # fmt: skip
    parent.log_text(buffer.getvalue(), JOBS_ARTIFACT)  # type: ignore[attr-defined]
    parent.log_metrics({f"sweep/{status.lower()}": float(n) for status, n in counts.items()})  # type: ignore[attr-defined]
