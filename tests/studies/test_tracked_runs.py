"""`load_runs`: which runs a selection reads, and that the SQL and MLflow readers return the same table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from twinids.errors import TwinIDSError
from twinids.results import sqlite_runs
from twinids.results.tracked_runs import RunSelection, filter_string, load_runs, parse_tag_filters


def read(store_uri: str, **selection) -> pd.DataFrame:
    return load_runs(RunSelection(**{"experiment": "twinids", **selection}), store_uri)


def test_only_finished_training_runs_are_read_by_default(store_uri, log_run):
    kept = log_run(name="trained")
    log_run(name="failed", status="FAILED")
    log_run(name="evaluated", tags={"twinids.job": "eval"})

    assert list(read(store_uri)["run_id"]) == [kept]


def test_naming_a_job_reads_that_job_instead(store_uri, log_run):
    log_run(name="trained")
    evaluated = log_run(name="evaluated", tags={"twinids.job": "eval"})

    assert list(read(store_uri, tags={"twinids.job": "eval"})["run_id"]) == [evaluated]


def test_tags_and_a_parent_run_narrow_the_selection(store_uri, log_run):
    parent = log_run(name="sweep", tags={"twinids.job": "sweep"})
    child = log_run(tags={"mlflow.parentRunId": parent, "twinids.dataset": "nsl_kdd"})
    log_run(tags={"twinids.dataset": "nsl_kdd"})

    assert list(read(store_uri, experiment=None, parent=parent)["run_id"]) == [child]
    assert len(read(store_uri, tags={"twinids.dataset": "nsl_kdd"})) == 2


def test_a_raw_filter_is_applied_with_mlflows_grammar(store_uri, log_run):
    log_run(metrics={"test/f1_macro": 0.95})
    log_run(metrics={"test/f1_macro": 0.5})

    assert len(read(store_uri, filter="metrics.`test/f1_macro` > 0.9")) == 1


def test_each_run_is_a_row_of_params_metrics_and_tags(store_uri, log_run):
    run_id = log_run(name="lstm-run", params={"model/name": "lstm"}, metrics={"test/fpr": 0.1})

    row = read(store_uri).iloc[0]

    assert (row["run_id"], row["run_name"], row["params.model/name"]) == (run_id, "lstm-run", "lstm")
    assert (row["metrics.test/fpr"], row["tags.twinids.job"]) == (0.1, "train")


def test_sql_and_mlflow_readers_return_the_same_table(synthetic_store, monkeypatch):
    fast = read(synthetic_store)
    monkeypatch.setattr(sqlite_runs, "understands", lambda database: False)  # forces MLflow's search_runs
    reference = read(synthetic_store)

    assert set(fast.columns) == set(reference.columns) and len(fast) == 50
    pd.testing.assert_frame_equal(
        fast.sort_values("run_id").reset_index(drop=True),
        reference[fast.columns].sort_values("run_id").reset_index(drop=True),
    )


def test_the_sql_reader_serves_only_the_schema_it_knows(synthetic_store, tmp_path):
    assert sqlite_runs.understands(Path(synthetic_store.removeprefix("sqlite:///")))
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE runs (id)").connection.commit()
    assert not sqlite_runs.understands(other)


def test_an_empty_selection_is_one_line_naming_the_search(store_uri, log_run):
    log_run()
    with pytest.raises(TwinIDSError) as refused:
        read(store_uri, tags={"twinids.model": "nope"})
    assert str(refused.value).startswith("no finished runs match in experiment 'twinids'")
    assert "tags.`twinids.model` = 'nope'" in str(refused.value) and "\n" not in str(refused.value)


def test_an_unknown_experiment_lists_the_existing_ones(store_uri, log_run):
    log_run()
    with pytest.raises(
        TwinIDSError, match="no experiment 'other' in the tracking store; experiments there: Default, twinids"
    ):
        read(store_uri, experiment="other")


def test_an_unknown_parent_run_is_named(store_uri, log_run):
    log_run()
    with pytest.raises(TwinIDSError, match="no run 'abc' in the tracking store"):
        read(store_uri, parent="abc")


def test_a_missing_store_is_not_created_by_reading(tmp_path):
    with pytest.raises(TwinIDSError, match="no tracking store at"):
        load_runs(RunSelection(experiment="twinids"), f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_an_invalid_raw_filter_is_one_line(store_uri, log_run):
    log_run()
    with pytest.raises(TwinIDSError, match="MLflow cannot search with filter"):
        read(store_uri, filter="params.bad syntax")


def test_tag_options_parse_as_key_value():
    assert parse_tag_filters(["twinids.dataset=nsl_kdd", "a=b=c"]) == {"twinids.dataset": "nsl_kdd", "a": "b=c"}
    with pytest.raises(TwinIDSError, match="--tag 'oops' is not key=value"):
        parse_tag_filters(["oops"])


def test_the_filter_string_says_what_is_searched():
    selection = RunSelection(experiment="x", tags={"twinids.model": "lstm"}, filter="params.seed = '1'")
    assert filter_string(selection) == (
        "attributes.status = 'FINISHED' and tags.`twinids.model` = 'lstm' and tags.`twinids.job` = 'train' "
        "and params.seed = '1'"
    )
