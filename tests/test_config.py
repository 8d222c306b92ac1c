"""Composing the Hydra tree: defaults, overrides and `# @package _global_` experiment overlays."""

from __future__ import annotations

import pytest

from twinids.config import compose, group_options, load_spec, require_complete
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metric: [val/f1_macro\n", r"x\.yaml: not valid YAML at line 2, column 1 \(expected ',' or ']'"),
        ("metric: a\n  direction: : b\n", r"x\.yaml: not valid YAML at line 2, column 12 \(mapping values"),
        ("metric: ${nowhere}\n", r"x\.yaml: an interpolation does not resolve \(Interpolation key 'nowhere' not found"),
        ("metric: ${oc.env:TWINIDS_UNSET_VARIABLE}\n", r"x\.yaml: an interpolation does not resolve \(.*UNSET"),
    ],
)
def test_a_spec_file_that_is_not_yaml_or_does_not_resolve_is_one_line_naming_the_file(tmp_path, text, message):
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(TwinIDSError, match=message) as refused:
        load_spec(tmp_path / "x.yaml", "a mapping", {"metric", "direction"})
    assert "\n" not in str(refused.value)


def test_privacy_dp_applies_the_models_dp_recipe_and_an_override_still_wins():
    from twinids.config import compose

    private = compose(["privacy=dp", "privacy.target_epsilon=3"])
    assert private.recipe == "dp_lstm" and private.data.batch_size == 1024
    assert (private.model.module.optimizer.lr, private.trainer.max_epochs) == (0.02, 30)
    hybrid = compose(["privacy=dp", "privacy.target_epsilon=3", "model=lstm_sae_mha"])
    assert (hybrid.recipe, hybrid.data.batch_size, hybrid.model.module.optimizer.lr) == ("dp_lstm_sae_mha", 2048, 0.05)
    assert hybrid.model.module.loss_weights == {"reconstruction": 0.1, "sparsity": 0.01}  # the hybrid's own terms
    assert compose(["privacy=dp", "privacy.target_epsilon=3", "experiment=smoke"]).trainer.max_epochs == 2
    assert compose(["privacy=dp", "privacy.target_epsilon=3", "data.batch_size=64"]).data.batch_size == 64
    plain = compose([])
    assert plain.recipe is None and plain.data.batch_size == 256
    assert compose(["privacy=dp", "privacy.target_epsilon=3", "model=random_forest"]).recipe is None
