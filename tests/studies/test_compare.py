"""`compare_runs`: averages repeats only (runs that differ in seeds alone), labels rows by config keys, names what
sets apart rows that share a label, mean ± std and counts over seeds, provenance marks and refusals."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from twinids.config import compose
from twinids.errors import TwinIDSError
from twinids.results.compare import compare_runs, default_keys, shown_value
from twinids.results.tracked_runs import RunSelection, load_runs
from twinids.tracking.config_hash import config_params, hash_tags
from twinids.tracking.provenance import data_fingerprint

NSL_KDD_DP = {"data/name": "nsl_kdd", "model/name": "lstm", "privacy/name": "dp", "privacy/target_epsilon": 1.0}


def runs_of(store_uri: str, **selection):
    return load_runs(RunSelection(experiment="twinids", **selection), store_uri)


def test_runs_are_grouped_by_config_keys_and_each_metric_averaged_over_seeds(store_uri, log_run):
    for seed, f1 in enumerate([0.80, 0.90, 1.00]):
        log_run(params={"model/name": "lstm", "seed": seed}, metrics={"test/f1_macro": f1})
    log_run(params={"model/name": "random_forest", "seed": 0}, metrics={"test/f1_macro": 0.7})

    comparison = compare_runs(runs_of(store_uri), by=["model.name"], metrics=["test/f1_macro"])

    lstm, forest = comparison.table.to_dict("records")
    assert (lstm["model.name"], lstm["runs"], lstm["test/f1_macro n"]) == ("lstm", 3, 3)
    assert lstm["test/f1_macro mean"] == pytest.approx(0.9)
    assert lstm["test/f1_macro std"] == pytest.approx(0.1)  # sample std over seeds (ddof=1)
    assert (forest["runs"], forest["test/f1_macro mean"]) == (1, pytest.approx(0.7))
    assert math.isnan(forest["test/f1_macro std"])  # one run: no spread to report


def test_default_keys_are_model_and_dataset_then_keys_that_split_groups_never_seeds(synthetic_store):
    runs = runs_of(synthetic_store)
    # privacy.name splits dp from none; target_epsilon splits the dp runs; the seed and the 80 settings
    # every run shares split nothing; tracking.* never defines a group.
    assert default_keys(runs) == ["model.name", "data.name", "privacy.name", "privacy.target_epsilon"]


def test_non_private_runs_form_their_own_group_with_epsilon_unset_and_sorted_last(store_uri, log_run):
    for epsilon in (8.0, 0.5, None, 2.0):
        params = {"model/name": "lstm", "privacy/name": "none" if epsilon is None else "dp"}
        if epsilon is not None:
            params["privacy/target_epsilon"] = epsilon
        log_run(params=params, metrics={"test/f1_macro": 0.9})

    table = compare_runs(runs_of(store_uri), by=["privacy.target_epsilon"]).table

    assert list(table["privacy.target_epsilon"].map(shown_value)) == ["0.5", "2.0", "8.0", "—"]


def test_a_logged_none_counts_as_unset(store_uri, log_run):
    log_run(params={"model/name": "lstm", "privacy/target_epsilon": None}, metrics={"test/f1_macro": 0.9})
    log_run(params={"model/name": "lstm"}, metrics={"test/f1_macro": 0.8})

    table = compare_runs(runs_of(store_uri), by=["model.name", "privacy.target_epsilon"]).table

    assert len(table) == 1 and table["runs"].iloc[0] == 2


def test_a_tag_name_is_a_grouping_key_too(store_uri, log_run):
    for model in ("lstm", "random_forest", "lstm"):
        log_run(params={"model/name": model}, metrics={"test/f1_macro": 0.9}, tags={"twinids.model": model})
    table = compare_runs(runs_of(store_uri), by=["twinids.model"], metrics=["test/f1_macro"]).table
    assert list(table["twinids.model"]) == ["lstm", "random_forest"] and list(table["runs"]) == [2, 1]


def test_a_metric_some_runs_lack_is_averaged_over_the_runs_that_logged_it(store_uri, log_run):
    log_run(params={"model/name": "lstm"}, metrics={"test/f1_macro": 0.9, "test/auroc": 0.95})
    log_run(params={"model/name": "lstm"}, metrics={"test/f1_macro": 0.8})

    row = compare_runs(runs_of(store_uri), by=["model.name"], metrics=["test/auroc"]).table.iloc[0]

    assert (row["runs"], row["test/auroc n"], row["test/auroc mean"]) == (2, 1, pytest.approx(0.95))


def test_default_metrics_are_the_test_scores_the_runs_logged(store_uri, log_run):
    log_run(params={"model/name": "lstm"}, metrics={"test/f1_macro": 0.9, "test/fpr": 0.1, "val/f1_macro": 0.8})
    assert compare_runs(runs_of(store_uri)).metrics == ["test/f1_macro", "test/fpr"]


def test_an_unknown_key_is_named_with_a_close_match_and_the_keys_the_runs_have(synthetic_store):
    with pytest.raises(TwinIDSError) as refused:
        compare_runs(runs_of(synthetic_store), by=["model.nam"])
    message = str(refused.value)
    assert "unknown --by key 'model.nam'" in message and "did you mean model.name?" in message
    assert "privacy.target_epsilon" in message and "\n" not in message


def test_an_unknown_metric_lists_the_logged_ones(synthetic_store):
    with pytest.raises(TwinIDSError, match=r"no run logged metric 'test/f2'; metrics of these runs: .*test/f1_macro"):
        compare_runs(runs_of(synthetic_store), metrics=["test/f2"])


def test_runs_of_one_row_from_different_code_versions_are_marked_and_explained(store_uri, log_run):
    for version in ("0.1.0+gaaa", "0.1.0+gaaa", "0.1.0+gbbb.dirty"):
        log_run(params={"model/name": "lstm"}, metrics={"test/f1_macro": 0.9}, tags={"twinids.code_version": version})
    log_run(params={"model/name": "rf"}, metrics={"test/f1_macro": 0.9}, tags={"twinids.code_version": "0.1.0+gaaa"})

    comparison = compare_runs(runs_of(store_uri), by=["model.name"])

    assert list(comparison.table["marks"]) == ["†", ""]
    assert comparison.footnotes() == [
        "† model.name=lstm: code versions differ: 0.1.0+gaaa (2 runs), 0.1.0+gbbb.dirty (1 run)"
    ]


def test_runs_of_one_row_made_from_different_data_are_refused_unless_mixing_is_asked(store_uri, log_run):
    for fingerprint in ("files-aaa", "files-bbb"):
        log_run(
            params={"model/name": "lstm"},
            metrics={"test/f1_macro": 0.9},
            tags={"twinids.data_fingerprint": fingerprint},
        )
    runs = runs_of(store_uri)

    with pytest.raises(TwinIDSError) as refused:
        compare_runs(runs, by=["model.name"])
    assert "model.name=lstm were made from different data" in str(refused.value)
    assert "files-aaa (1 run), files-bbb (1 run)" in str(refused.value) and "--mix-data" in str(refused.value)

    mixed = compare_runs(runs, by=["model.name"], mix_data=True)
    assert list(mixed.table["marks"]) == ["‡"] and "data fingerprints differ" in mixed.footnotes()[0]


def test_runs_that_differ_outside_by_are_never_averaged_and_each_row_names_what_sets_it_apart(store_uri, log_run):
    """A MAS fine-tune and a from-scratch DP run share data, model and ε: two detectors, not two seeds."""
    log_run(params={**NSL_KDD_DP, "transfer/name": "finetune", "seed": 0}, metrics={"test/f1_macro": 0.801})
    for seed, f1 in ((0, 0.75), (1, 0.76)):
        log_run(params={**NSL_KDD_DP, "transfer/name": "none", "seed": seed}, metrics={"test/f1_macro": f1})

    by = ["data.name", "model.name", "privacy.target_epsilon"]
    table = compare_runs(runs_of(store_uri), by=by, metrics=["test/f1_macro"]).table

    assert list(table["differs"]) == ["transfer.name=finetune", "transfer.name=none"]
    assert list(table["runs"]) == [1, 2]
    assert list(table["test/f1_macro mean"]) == [pytest.approx(0.801), pytest.approx(0.755)]


def test_quick_and_full_runs_of_one_detector_get_a_row_each_naming_every_setting_that_differs(store_uri, log_run):
    quick = {"trainer/max_epochs": 2, "trainer/limit_train_batches": 10}
    full = {"trainer/max_epochs": 50, "trainer/limit_train_batches": 1.0}
    for seed in range(2):
        log_run(params={"model/name": "lstm", "seed": seed, **quick}, metrics={"test/f1_macro": 0.46})
        log_run(params={"model/name": "lstm", "seed": seed, **full}, metrics={"test/f1_macro": 0.95})

    table = compare_runs(runs_of(store_uri), by=["model.name"], metrics=["test/f1_macro"]).table

    assert sorted(table["differs"]) == [
        "trainer.limit_train_batches=1, trainer.max_epochs=50",
        "trainer.limit_train_batches=10, trainer.max_epochs=2",
    ]
    assert sorted(table["test/f1_macro mean"]) == [pytest.approx(0.46), pytest.approx(0.95)]
    assert list(table["runs"]) == [2, 2]


def test_runs_differing_only_in_seeds_and_results_logged_as_params_are_one_row(store_uri, log_run):
    for seed in range(3):
        log_run(
            params={
                "model/name": "random_forest",
                "seed": seed,
                "model/estimator/random_state": seed,
                "tracking/uri": f"sqlite:///{seed}.db",
                "privacy.epsilon": 0.9 + seed / 100,
            },
            metrics={"test/f1_macro": 0.9},
        )
    table = compare_runs(runs_of(store_uri), by=["model.name"]).table
    assert list(table["runs"]) == [3] and list(table["differs"]) == [""]


def test_the_seeds_of_the_default_data_are_averaged_without_mixing_data(store_uri, log_run):
    """Each simulator seed used to give the data another fingerprint; repeats now share one."""
    for seed, f1 in ((0, 0.90), (1, 0.92), (2, 0.94)):
        cfg = compose([f"seed={seed}"])
        tags = {"twinids.data_fingerprint": data_fingerprint(None, cfg.data.source), **hash_tags(cfg)}
        log_run(params=config_params(cfg), metrics={"test/f1_macro": f1}, tags=tags)

    row = compare_runs(runs_of(store_uri), by=["model.name", "data.name"]).table.iloc[0]

    assert (row["runs"], row["differs"], row["marks"]) == (3, "", "")
    assert (row["test/f1_macro mean"], row["test/f1_macro std"]) == (pytest.approx(0.92), pytest.approx(0.02))


def test_old_simulator_runs_whose_fingerprints_held_the_seed_are_still_averaged(store_uri, log_run):
    for seed in range(2):
        log_run(
            params={"model/name": "lstm", "data/name": "synthetic_twin", "data/source/seed": seed, "seed": seed},
            metrics={"test/f1_macro": 0.9},
            tags={"twinids.data_fingerprint": f"config-seed{seed}"},
        )
    assert list(compare_runs(runs_of(store_uri), by=["model.name"]).table["runs"]) == [2]


def test_the_repeat_hash_tag_decides_and_a_difference_no_param_shows_is_named_by_it(store_uri, log_run):
    for repeat in ("aaaa", "bbbb"):
        log_run(params={"model/name": "lstm"}, metrics={"test/f1_macro": 0.9}, tags={"twinids.repeat_hash": repeat})
    table = compare_runs(runs_of(store_uri), by=["model.name"]).table
    assert list(table["differs"]) == ["twinids.repeat_hash=aaaa", "twinids.repeat_hash=bbbb"]


def test_each_row_lists_the_runs_it_averages(store_uri, log_run):
    full = [log_run(params={"model/name": "lstm", "trainer/max_epochs": 50, "seed": s}) for s in range(2)]
    quick = log_run(params={"model/name": "lstm", "trainer/max_epochs": 2})
    for run_id in (*full, quick):
        MlflowClient(store_uri).log_metric(run_id, "test/f1_macro", 0.9)

    table = compare_runs(runs_of(store_uri), by=["model.name"]).table

    assert list(table["run_ids"]) == [[quick], sorted(full)]
