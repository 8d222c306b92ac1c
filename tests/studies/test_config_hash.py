"""`config_hash`: the same job hashes alike wherever it is composed; only result-changing settings change it."""

from __future__ import annotations

import re

from omegaconf import OmegaConf

from twinids.config import compose
from twinids.tracking.config_hash import config_hash


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


def test_whole_numbers_hash_alike_as_int_or_float():
    assert config_hash(OmegaConf.create({"epsilon": 1})) == config_hash(OmegaConf.create({"epsilon": 1.0}))
    assert config_hash(OmegaConf.create({"epsilon": 1.5})) != config_hash(OmegaConf.create({"epsilon": 1}))


def test_interpolations_are_hashed_resolved():
    assert config_hash(OmegaConf.create({"seed": 1, "data": {"seed": "${seed}"}})) == config_hash(
        OmegaConf.create({"seed": 1, "data": {"seed": 1}})
    )
