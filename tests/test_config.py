"""Composing the Hydra tree: defaults, overrides and `# @package _global_` experiment overlays."""

from __future__ import annotations

import pytest

from twinids.config import compose, group_options, require_complete
from twinids.errors import TwinIDSError


def test_default_config_trains_the_lstm_on_the_simulator_without_privacy():
    cfg = compose()
    assert (cfg.data.name, cfg.model.name, cfg.privacy.name) == ("synthetic_twin", "lstm", "none")


def test_experiment_overlay_overrides_settings_anywhere_in_the_tree():
    cfg = compose(["experiment=smoke"])
    assert cfg.trainer.max_epochs == 2 and cfg.run_name == "smoke"


def test_command_line_overrides_win_over_the_experiment_overlay():
    assert compose(["experiment=smoke", "trainer.max_epochs=5"]).trainer.max_epochs == 5


def test_every_dataset_and_model_option_composes():
    for data in group_options("data"):
        for model in group_options("model"):
            cfg = compose([f"data={data}", f"model={model}"])
            assert cfg.data.name == data and cfg.model.name == model


def test_unset_mandatory_values_are_named():
    with pytest.raises(TwinIDSError, match=r"data\.source\.path"):
        require_complete(compose(["data=csv"]))
