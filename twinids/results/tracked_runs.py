"""Select finished training runs from the tracking store and return them as one table (a row per run).

Columns: `run_id`, `run_name`, `experiment_id`, then `params.<name>`, `metrics.<name>` and `tags.<name>` as
MLflow names them (params keep the flattened config's `/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from twinids.errors import TwinIDSError, first_line
from twinids.results.sqlite_runs import Record

if TYPE_CHECKING:
    import pandas as pd

JOB_TAG = "twinids.job"
PARENT_TAG = "mlflow.parentRunId"
PAGE_SIZE = 5000  # runs per search request; the SQL store allows 50,000


@dataclass(frozen=True)
class RunSelection:
    """Which runs to read: an experiment (or a sweep's parent run), tag equalities and a raw MLflow filter.

    Only FINISHED runs are read, and only training runs (`twinids.job=train`) unless `tags` names a job.
    """

    experiment: str | None = None
    parent: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    filter: str | None = None


def parse_tag_filters(items: Sequence[str]) -> dict[str, str]:
    """`["k=v", ...]` as a dict; raise TwinIDSError on an item without `=`."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TwinIDSError(f"--tag '{item}' is not key=value (e.g. --tag twinids.dataset=nsl_kdd)")
        tags[key.strip()] = value.strip()
    return tags


def filter_string(selection: RunSelection) -> str:
    """The MLflow search filter for a selection: status, job, parent, tags and the raw filter, joined by AND."""
    return _joined(selection_tags(selection), selection.filter)


def _joined(tags: Mapping[str, str], raw_filter: str | None) -> str:
    clauses = ["attributes.status = 'FINISHED'", *(f"tags.`{key}` = {_quoted(value)}" for key, value in tags.items())]
    return " and ".join([*clauses, raw_filter] if raw_filter else clauses)


def _quoted(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


def selection_tags(selection: RunSelection) -> dict[str, str]:
    """The tag equalities a selection implies: its own, the job (train unless named), and the parent run."""
    tags = dict(selection.tags)
    if JOB_TAG not in tags and JOB_TAG not in (selection.filter or ""):
        tags[JOB_TAG] = "train"
    if selection.parent:
        tags[PARENT_TAG] = selection.parent
    return tags


def load_runs(selection: RunSelection, tracking_uri: str) -> pd.DataFrame:
    """Every run the selection matches, one row each, newest first.

    A SQLite store is read with SQL (`sqlite_runs`) unless a raw filter needs MLflow's filter grammar or
    the schema is not the one known; any other store, and those cases, through MLflow's `search_runs`.

    Raises:
        TwinIDSError: if the store, experiment or parent run does not exist, the filter is invalid, or
            nothing matches (the message says what was searched).
    """
    import pandas as pd

    from twinids.results.sqlite_runs import SqliteRunReader, understands
    from twinids.tracking.store import sqlite_database, store_errors

    database = sqlite_database(tracking_uri)
    if database is not None and not database.exists():
        raise TwinIDSError(f"no tracking store at {database}; train a run first or pass --tracking-uri")
    fast = database is not None and not selection.filter and understands(database)
    reader = SqliteRunReader(database) if fast else MlflowRunReader(tracking_uri, selection.filter)
    tags = selection_tags(selection)
    with store_errors(tracking_uri):
        experiment_id = _experiment_id(reader, selection)
        records = reader.records(experiment_id, tags)
    if not records:
        where = f"parent run {selection.parent}" if selection.parent else f"experiment '{selection.experiment}'"
        raise TwinIDSError(
            f"no finished runs match in {where} (filter: {filter_string(selection)}); check --tag/--filter, "
            "or train first"
        )
    rows = [
        {
            "run_id": run_id,
            "run_name": run_name,
            "experiment_id": experiment,
            **{f"params.{key}": value for key, value in params.items()},
            **{f"metrics.{key}": value for key, value in metrics.items()},
            **{f"tags.{key}": value for key, value in run_tags.items()},
        }
        for run_id, run_name, experiment, params, metrics, run_tags in records
    ]
    return pd.DataFrame(rows)


def _experiment_id(reader: RunReader, selection: RunSelection) -> str:
    """The experiment to search: the parent run's when a parent is given, else the named one."""
    if selection.parent:
        found = reader.run_experiment(selection.parent)
        if found is None:
            raise TwinIDSError(f"no run '{selection.parent}' in the tracking store (--parent)")
        return found
    found = reader.experiment_id(selection.experiment or "")
    if found is None:
        raise TwinIDSError(
            f"no experiment '{selection.experiment}' in the tracking store; experiments there: "
            f"{', '.join(reader.experiment_names()) or '(none)'}"
        )
    return found


class RunReader(Protocol):
    """What `load_runs` asks a tracking store (see `MlflowRunReader`, `sqlite_runs.SqliteRunReader`)."""

    def experiment_id(self, name: str) -> str | None: ...
    def experiment_names(self) -> list[str]: ...
    def run_experiment(self, run_id: str) -> str | None: ...
    def records(self, experiment_id: str, tags: Mapping[str, str]) -> list[Record]: ...


class MlflowRunReader:
    """`load_runs`'s questions answered by MLflow's client: any store, and MLflow's full filter grammar."""

    def __init__(self, tracking_uri: str, raw_filter: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri)
        self.raw_filter = raw_filter

    def experiment_id(self, name: str) -> str | None:
        """The id of the experiment of that name, or None."""
        found = self.client.get_experiment_by_name(name)
        return None if found is None else found.experiment_id

    def experiment_names(self) -> list[str]:
        """Names of the active experiments."""
        return sorted(experiment.name for experiment in self.client.search_experiments())

    def run_experiment(self, run_id: str) -> str | None:
        """The experiment id of a run, or None if there is no such run."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.experiment_id
        except MlflowException:
            return None

    def records(self, experiment_id: str, tags: Mapping[str, str]) -> list[Record]:
        """FINISHED runs with the tags (and the raw filter), paged through `search_runs`, newest first."""
        from mlflow.entities import ViewType
        from mlflow.exceptions import MlflowException

        query = _joined(tags, self.raw_filter)
        runs, token = [], None
        while True:
            try:
                page = self.client.search_runs(
                    [experiment_id], query, ViewType.ACTIVE_ONLY, max_results=PAGE_SIZE, page_token=token
                )
            except MlflowException as error:
                raise TwinIDSError(f'MLflow cannot search with filter "{query}": {first_line(error)}') from error
            runs.extend(page)
            token = page.token
            if not token:
                break
        return [
            (
                run.info.run_id,
                run.info.run_name,
                run.info.experiment_id,
                run.data.params,
                run.data.metrics,
                run.data.tags,
            )
            for run in runs
        ]


def configured_experiment() -> str:
    """The experiment `twinids train` logs to by default: `tracking.mlflow_experiment` of the composed config."""
    from twinids.config import compose

    return str(compose([]).tracking.mlflow_experiment)
