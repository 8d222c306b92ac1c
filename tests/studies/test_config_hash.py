"""`config_hash`: the same job hashes alike wherever it is composed; only result-changing settings change it.
`repeat_hash`: runs that differ in seeds alone hash alike, from their config or from their logged params."""

from __future__ import annotations

import re

from omegaconf import OmegaConf

from twinids.config import compose
from twinids.tracking.config_hash import (
    CONFIG_HASH_TAG,
    REPEAT_HASH_TAG,
    config_hash,
    hash_tags,
    repeat_hash,
    repeat_hash_of_params,
)


def test_the_hash_is_16_hex_digits_and_pinned_for_a_fixed_config():
    digest = config_hash(OmegaConf.create({"model": {"name": "lstm", "lr": 0.003}, "seed": 1}))
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert digest == "d8f616efa49dda2b"  # a change here re-runs every finished sweep job: change it knowingly


def test_key_order_and_override_order_do_not_matter():
    assert config_hash(OmegaConf.create({"a": 1, "b": {"c": 2, "d": 3}})) == config_hash(
        OmegaConf.create({"b": {"d": 3, "c": 2}, "a": 1})
    )
    assert config_hash(compose(["seed=3", "model=random_forest"])) == config_hash(
        compose(["model=random_forest", "seed=3"])
    )


def test_settings_that_never_change_a_result_are_left_out():
    base = config_hash(compose([]))
    neutral = [
        "tracking.uri=sqlite:///elsewhere.db",
        "tracking.mlflow_experiment=other",
        "paths.output_dir=/tmp/else",
        "run_name=named",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=true",
    ]
    assert config_hash(compose(neutral)) == base


def test_settings_that_change_a_result_change_the_hash():
    base = config_hash(compose([]))
    assert config_hash(compose(["seed=43"])) != base
    assert config_hash(compose(["model=random_forest"])) != base
    assert config_hash(compose(["trainer.max_epochs=3"])) != base


def test_a_key_set_to_null_hashes_as_if_it_were_not_there_so_new_off_settings_keep_old_hashes():
    old = OmegaConf.create({"data": {"window": 20}, "seed": 1})
    with_new_key_off = OmegaConf.create({"data": {"window": 20, "train_half": None}, "seed": 1})
    assert config_hash(with_new_key_off) == config_hash(old)
    assert config_hash(OmegaConf.create({"data": {"window": 20, "train_half": 0}, "seed": 1})) != config_hash(old)


def test_the_audit_without_canaries_hashes_as_if_it_were_not_there_so_runs_from_before_it_keep_their_hashes():
    for privacy in ("privacy=none", "privacy=dp"):
        cfg = compose(cfg_overrides(privacy))
        before_the_audit = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        del before_the_audit.privacy["audit"]
        assert config_hash(cfg) == config_hash(before_the_audit)
        assert repeat_hash(cfg) == repeat_hash(before_the_audit)
        with_canaries = compose([*cfg_overrides(privacy), "privacy.audit.canaries=5"])
        assert config_hash(with_canaries) != config_hash(cfg)
        assert repeat_hash(with_canaries) != repeat_hash(cfg)
        assert config_hash(compose([*cfg_overrides(privacy), "privacy.audit.kind=black_box"])) == config_hash(cfg)
    averaging_off = compose(["callbacks.weight_averaging.update_starting_at_epoch=3"])  # no decay: no averaging
    assert config_hash(averaging_off) == config_hash(compose([]))
    assert config_hash(compose(["callbacks.weight_averaging.decay=0.99"])) != config_hash(compose([]))


def cfg_overrides(privacy: str) -> list[str]:
    return [privacy, "privacy.target_epsilon=3"] if privacy == "privacy=dp" else [privacy]


def test_whole_numbers_hash_alike_as_int_or_float():
    assert config_hash(OmegaConf.create({"epsilon": 1})) == config_hash(OmegaConf.create({"epsilon": 1.0}))
    assert config_hash(OmegaConf.create({"epsilon": 1.5})) != config_hash(OmegaConf.create({"epsilon": 1}))


def test_interpolations_are_hashed_resolved():
    assert config_hash(OmegaConf.create({"seed": 1, "data": {"seed": "${seed}"}})) == config_hash(
        OmegaConf.create({"seed": 1, "data": {"seed": 1}})
    )


def test_repeats_hash_alike_whatever_their_seeds_even_where_the_seed_is_interpolated():
    assert repeat_hash(compose(["seed=1"])) == repeat_hash(compose(["seed=2"]))  # data.source.seed: ${seed}
    forest = ["model=random_forest", "data=nsl_kdd"]  # model.estimator.random_state: ${seed}; a split seed
    assert repeat_hash(compose([*forest, "seed=1"])) == repeat_hash(compose([*forest, "seed=2", "data.source.seed=5"]))


def test_every_setting_but_seeds_and_result_neutral_ones_changes_the_repeat_hash():
    base = repeat_hash(compose([]))
    assert repeat_hash(compose(["tracking.mlflow_experiment=other", "run_name=named", "data.root=/elsewhere"])) == base
    for changed in (["trainer.max_epochs=2"], ["trainer.limit_train_batches=10"], ["model=random_forest"]):
        assert repeat_hash(compose(changed)) != base, changed
    scratch = compose(["data=nsl_kdd", "privacy=dp", "privacy.target_epsilon=1"])
    finetune = compose(
        ["data=nsl_kdd", "privacy=dp", "privacy.target_epsilon=1", "transfer=finetune", "transfer.source=a"]
    )
    assert repeat_hash(scratch) != repeat_hash(finetune)


def test_the_repeat_hash_of_a_runs_logged_params_is_the_one_its_tag_carries(tmp_path):
    """Old runs have no repeat-hash tag: `compare` recomputes it from their params, and it must agree."""
    from mlflow.tracking import MlflowClient

    from twinids.tracking.run import start_run

    cfg = compose(["privacy=dp", "privacy.target_epsilon=1.0", "data.source.attacks={}", "run_name=logged"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with start_run("hashes", uri, tags=hash_tags(cfg)) as run:
        run.log_config(cfg, [])
        run.log_params({"privacy.epsilon": 0.97})  # a result logged as a param after training, not a setting
    logged = MlflowClient(uri).get_run(run.run_id).data

    assert repeat_hash_of_params(logged.params) == logged.tags[REPEAT_HASH_TAG] == repeat_hash(cfg)
    assert logged.tags[CONFIG_HASH_TAG] == config_hash(cfg)


def test_the_repeat_hash_of_params_reads_whole_numbers_one_way_and_unset_values_as_absent():
    assert repeat_hash_of_params({"privacy/target_epsilon": "1"}) == repeat_hash_of_params(
        {"privacy/target_epsilon": "1.0"}
    )
    assert repeat_hash_of_params({"privacy/target_epsilon": "1.5"}) != repeat_hash_of_params(
        {"privacy/target_epsilon": "1"}
    )
    assert repeat_hash_of_params({"model/name": "lstm", "transfer/source": "None"}) == repeat_hash_of_params(
        {"model/name": "lstm"}
    )
