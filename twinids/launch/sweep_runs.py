"""What a sweep reads and writes in the tracking store besides its jobs' own runs.

Finished runs by config hash (so a re-run skips them), the parent run of an earlier run of the same sweep
(so an interrupted sweep continues under one parent), and the status of job runs a dead process left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from twinids.launch.sweep_jobs import ATTEMPT_TAG, CONFIG_HASH_TAG, FAILED, FINISHED, JobOutcome, child_tags

JOB_TAG = "twinids.job"
PRUNED_TAG = "twinids.pruned"  # a tuning trial stopped early: trained fewer epochs than its config says
SWEEP_HASH_TAG = "twinids.sweep_hash"
PAGE_SIZE = 5000


def _search(client: object, experiment_id: str, query: str, order_by: list[str] | None = None) -> list:
    """Every run matching `query`, paged."""
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(  # type: ignore[attr-defined]
            [experiment_id], query, ViewType.ACTIVE_ONLY, max_results=PAGE_SIZE, order_by=order_by, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def finished_runs_by_hash(
    tracking_uri: str, experiment: str, hashes: Iterable[str], job: str = "train"
) -> dict[str, str]:
    """For each config hash, the newest FINISHED run of `job` (train, federate) tagged with it (pruned tuning trials
    aside)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    wanted = set(hashes)
    if found is None or not wanted:
        return {}
    query = f"attributes.status = 'FINISHED' and tags.`{JOB_TAG}` = '{job}' and tags.`{CONFIG_HASH_TAG}` LIKE '%'"
    runs = _search(client, found.experiment_id, query, order_by=["attributes.start_time DESC"])
    chosen: dict[str, str] = {}
    for run in runs:
        tags = run.data.tags
        config_hash = tags.get(CONFIG_HASH_TAG)
        if config_hash in wanted and config_hash not in chosen and tags.get(PRUNED_TAG) != "true":
            chosen[config_hash] = run.info.run_id
    return chosen


def earlier_parent(tracking_uri: str, experiment: str, job: str, key_tag: str, key: str) -> str | None:
    """The newest parent run of `job` (sweep, tune) whose `key_tag` is `key`, whatever its status, or None."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    query = f"tags.`{JOB_TAG}` = '{job}' and tags.`{key_tag}` = '{key}'"
    runs = client.search_runs([found.experiment_id], query, max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def end_left_runs(tracking_uri: str, experiment: str, attempts: Mapping[str, str], status: str) -> list[str]:
    """Set `status` on the runs of these attempt tokens still RUNNING (their process died or was killed).

    Returns the run ids changed.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None or not attempts:
        return []
    changed = []
    for run in _search(client, found.experiment_id, f"attributes.status = 'RUNNING' and tags.`{ATTEMPT_TAG}` LIKE '%'"):
        if run.data.tags.get(ATTEMPT_TAG) in attempts:
            client.set_terminated(run.info.run_id, status)
            changed.append(run.info.run_id)
    return changed


def run_of_attempt(tracking_uri: str, experiment: str, attempt: str) -> str | None:
    """The run a job attempt created, if it got that far."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], f"tags.`{ATTEMPT_TAG}` = '{attempt}'", max_results=1)
    return runs[0].info.run_id if runs else None


def record_refused_job(tracking_uri: str, experiment: str, tags: Mapping[str, str], message: str, name: str) -> str:
    """A FAILED child run for a job refused before its own run existed, so the sweep's view shows why."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    all_tags = {**tags, JOB_TAG: "train", "twinids.error": message[:5000]}
    run = client.create_run(experiment_id, run_name=name, tags=all_tags)
    client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def settle_outcome(outcome: JobOutcome, attempt: str, parent_run_id: str, uri: str, experiment: str) -> JobOutcome:
    """Make sure a job that did not finish has a run with its final status, and name it in the outcome.

    A worker that died leaves its run RUNNING; a job refused before its run existed gets a FAILED run that
    holds the error, so the sweep's parent shows every job.
    """
    from dataclasses import replace

    if outcome.status == FINISHED or outcome.run_id or not attempt:
        return outcome
    end_left_runs(uri, experiment, {attempt: outcome.job.label()}, outcome.status)
    run_id = run_of_attempt(uri, experiment, attempt)
    if run_id is None and outcome.status == FAILED:
        tags = child_tags(outcome.job, parent_run_id, attempt)
        run_id = record_refused_job(uri, experiment, tags, outcome.message, f"failed-job-{outcome.job.number}")
    return replace(outcome, run_id=run_id)
