"""`twinids reproduce TABLE`: run what a table's sweeps still miss, then write the table from the runs behind it.

Every job is a sweep job, so finished runs with the same resolved config are reused (config-hash resume);
the table is built from exactly the runs of its jobs, never from whatever else the store holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from twinids.adversary.attack_job import ATTACK_JOB
from twinids.errors import TwinIDSError
from twinids.launch.sweep import SweepSettings, SweepSummary, run_sweep
from twinids.launch.sweep_jobs import FINISHED, SKIPPED, JobOutcome
from twinids.response.respond_job import RESPOND_JOB
from twinids.results.table_spec import TableSpec

TABLE_TAG = "twinids.table"


@dataclass(frozen=True)
class ReproduceSettings:
    """How to run a table's sweeps: extra overrides for every job, parallel jobs, launcher, store."""

    overrides: Sequence[str] = ()
    parallel_jobs: int = 1
    launcher: str = "pool"
    force: bool = False
    tracking_uri: str | None = None
    command: str = ""  # the command line that asked for the table, written beside it


@dataclass(frozen=True)
class ReproduceResult:
    """The sweeps run for a table and the files written."""

    summaries: list[SweepSummary]
    written: list[Path] = field(default_factory=list)

    def failed(self) -> int:
        """Jobs that failed (their cells are missing from the table)."""
        return sum(summary.counts()["FAILED"] for summary in self.summaries)


def reproduce_table(
    spec: TableSpec,
    settings: ReproduceSettings,
    out_dir: Path,
    on_outcome: Callable[[JobOutcome], None] = lambda outcome: None,
    on_follow_up: Callable[[str], None] = lambda line: None,
) -> ReproduceResult:
    """Run the table's sweeps (only the missing jobs), then write `<out_dir>/<stem>.md|.csv|.tex` (and its figure).

    Raises:
        TwinIDSError: for a sweep that cannot be planned, or when no job of the table has a finished run.
        JobInterrupted: after a signal, as `twinids sweep` does.
    """
    from twinids.results.compare import compare_runs
    from twinids.results.table_report import TableReport, write_report
    from twinids.results.tracked_runs import RunSelection, load_runs

    summaries = []
    for sweep in spec.sweeps:
        sweep_settings = SweepSettings(
            [*sweep, *settings.overrides],
            parallel_jobs=settings.parallel_jobs,
            launcher=settings.launcher,
            force=settings.force,
            tracking_uri=settings.tracking_uri,
            tags={TABLE_TAG: spec.stem},
            command=spec.command,
        )
        summaries.append(run_sweep(sweep_settings, on_outcome))
    run_ids = sorted({o.run_id for s in summaries for o in s.outcomes if o.status in (FINISHED, SKIPPED) and o.run_id})
    if not run_ids:
        raise TwinIDSError(f"table '{spec.name}': no job finished, so there is nothing to tabulate")
    uri, experiment = _store_of(summaries[0])
    for audit_overrides in spec.audits:
        audit_missing(run_ids, audit_overrides, uri, settings.parallel_jobs)
    job = {"twinids.job": spec.command}
    if spec.follow_ups is not None:
        follow_up = FOLLOW_UPS[spec.follow_ups[0]]
        run_ids = follow_ups_missing(run_ids, spec.follow_ups[1], follow_up, uri, on_follow_up)
        if not run_ids:
            raise TwinIDSError(f"table '{spec.name}': no {follow_up.command} run finished: nothing to tabulate")
        job = {"twinids.job": follow_up.job}
    listed = ", ".join(f"'{r}'" for r in run_ids)
    selection = RunSelection(experiment, tags=job, filter=f"attributes.run_id IN ({listed})")
    runs = load_runs(selection, uri)
    comparison = compare_runs(runs, spec.rows, spec.metrics, spec.mix_data)
    parents = [summary.parent_run_id for summary in summaries]
    data_root = shown_path(str(summaries[0].outcomes[0].job.config["data"].get("root", "")))
    report = TableReport(
        spec, comparison, runs, parents, shown_store(uri), settings.command, list(settings.overrides), data_root
    )
    written = write_report(report, out_dir)
    return ReproduceResult(summaries, written)


def shown_store(uri: str) -> str:
    """A tracking URI as the table's provenance shows it: a SQLite file relative to where `reproduce` ran."""
    from twinids.tracking.store import SQLITE_PREFIX

    return SQLITE_PREFIX + shown_path(uri.removeprefix(SQLITE_PREFIX)) if uri.startswith(SQLITE_PREFIX) else uri


def shown_path(path: str) -> str:
    """A folder or file as the table's provenance shows it (the data folder, a SQLite store): relative to where
    `reproduce` ran, so that the results committed to a repository name no folder of the machine that made them."""
    return os.path.relpath(path) if os.path.isabs(path) else path


def audit_missing(run_ids: Sequence[str], overrides: Sequence[str], tracking_uri: str, parallel_jobs: int) -> None:
    """Run the audit `overrides` ask for on every run that lacks its figures (as sweeps reuse finished runs)."""
    import mlflow

    from twinids.adversary.audit import read_audit_settings
    from twinids.launch.shadows import audit

    attack = read_audit_settings(overrides).attack
    client = mlflow.tracking.MlflowClient(tracking_uri)
    for run_id in run_ids:
        if f"audit/{attack}/mia_auc" not in client.get_run(run_id).data.metrics:
            audit(run_id, overrides, tracking_uri, parallel_jobs)


@dataclass(frozen=True)
class FollowUp:
    """A command run on every run of a table's sweeps, whose runs make the table (an attack, a response study).

    Attributes:
        command: the `twinids` command (for report lines).
        job: the `twinids.job` tag of its runs.
        run: (trained run id, overrides, tracking URI) -> the id of the run it logged.
        finished: the same -> the id of a finished run with those settings, if the store holds one.
        seeded: whether it takes a `seed` (the trained run's, unless the table gives one).
    """

    command: str
    job: str
    run: Callable[[str, Sequence[str], str], str]
    finished: Callable[[str, Sequence[str], str], str | None]
    seeded: bool


def _attack(run_id: str, overrides: Sequence[str], tracking_uri: str) -> str:
    from twinids.adversary.attack_job import conceal_run

    return conceal_run(run_id, overrides, tracking_uri).run_id


def _finished_attack(run_id: str, overrides: Sequence[str], tracking_uri: str) -> str | None:
    from twinids.adversary.attack_job import finished_attack

    return finished_attack(run_id, overrides, tracking_uri)


def _respond(run_id: str, overrides: Sequence[str], tracking_uri: str) -> str:
    from twinids.response.respond_job import respond_run

    return respond_run(run_id, overrides, tracking_uri).run_id


def _finished_response(run_id: str, overrides: Sequence[str], tracking_uri: str) -> str | None:
    from twinids.response.respond_job import finished_response

    return finished_response(run_id, overrides, tracking_uri)


FOLLOW_UPS = {
    "attack": FollowUp("attack", ATTACK_JOB, _attack, _finished_attack, seeded=True),
    "respond": FollowUp("respond", RESPOND_JOB, _respond, _finished_response, seeded=False),
}


def follow_ups_missing(
    run_ids: Sequence[str],
    sweeps: Sequence[Sequence[str]],
    follow_up: FollowUp,
    tracking_uri: str,
    report: Callable[[str], None],
) -> list[str]:
    """Run every follow-up the table asks for on every run where the store holds no finished one; their runs.

    An attack's seed (which channels it controls) is the detector run's seed unless the table sets one, so the
    seeds of a cell vary both. A follow-up the run cannot take (a white-box attack on a random forest) is reported
    and left out: its cell stays empty.
    """
    import mlflow

    from twinids.launch.sweep_plan import expand_sweep

    client = mlflow.tracking.MlflowClient(tracking_uri)
    follow_up_runs = []
    for run_id in run_ids:
        seed = client.get_run(run_id).data.params.get("seed", "0")
        for sweep in sweeps:
            for overrides in expand_sweep(sweep):
                if follow_up.seeded and not any(o.split("=", 1)[0] == "seed" for o in overrides):
                    overrides = [*overrides, f"seed={seed}"]
                line = f"{follow_up.command} {' '.join(overrides)} on {run_id}"
                found = follow_up.finished(run_id, overrides, tracking_uri)
                if found is None:
                    try:
                        found = follow_up.run(run_id, overrides, tracking_uri)
                    except TwinIDSError as error:
                        report(f"{line}: not run ({error})")
                        continue
                    report(f"{line}: run {found}")
                follow_up_runs.append(found)
    return sorted(follow_up_runs)


def _store_of(summary: SweepSummary) -> tuple[str, str]:
    """The tracking URI and experiment a sweep's jobs used."""
    config = summary.outcomes[0].job.config
    return str(config["tracking"]["uri"]), str(config["tracking"]["mlflow_experiment"])
