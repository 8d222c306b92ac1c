"""Role views (issue 17 §4): `data.view` chooses the features a detector reads, and only the columns change."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from twinids.data.prepare import WindowSettings, prepare_windows
from twinids.data.views import EVERY_FEATURE, check_same_view, resolve_view
from twinids.errors import TwinIDSError
from twinids.tracking.config_hash import config_hash, repeat_hash
from twinids.twin.network import FEATURES, simulate_network

ROLES = ("operator", "maintenance", "security")


@pytest.fixture(scope="module")
def frame(source_settings):
    """A small simulator frame with every attack type."""
    return simulate_network(**source_settings("synthetic_twin", n_steps=900, seed=3))


def settings_for(shipped_config, *overrides: str) -> WindowSettings:
    return WindowSettings.from_config(shipped_config(*overrides).data)


def test_the_simulator_offers_the_three_roles_each_naming_only_its_own_features(shipped_config):
    views = shipped_config().data.views
    assert tuple(views) == ROLES
    for role in ROLES:
        features = list(views[role])
        assert features and set(features) <= set(FEATURES) and len(set(features)) == len(features), role
        assert set(features) < set(FEATURES), f"{role} reads every feature: not a view"
    assert "dt" in views.security and "sensor_primary" not in views.security  # the link, not the process


def test_no_view_reads_every_feature(shipped_config):
    view = resolve_view(shipped_config().data)
    assert view.features is None and view.name == EVERY_FEATURE


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_the_features_its_yaml_lists(shipped_config, role):
    cfg = shipped_config(f"data.view={role}")
    assert resolve_view(cfg.data).features == tuple(cfg.data.views[role])


def test_a_view_can_be_a_list_of_features(shipped_config):
    view = resolve_view(shipped_config("data.view=[sensor_primary,setpoint]").data)
    assert view.features == ("sensor_primary", "setpoint") and view.name == "[sensor_primary, setpoint]"


def test_an_unknown_role_is_refused_naming_the_key_and_the_roles(shipped_config):
    with pytest.raises(TwinIDSError, match=r"unknown data\.view 'pilot'; valid: operator \| maintenance \| security"):
        resolve_view(shipped_config("data.view=pilot").data)


def test_a_role_on_data_that_names_no_roles_is_refused(shipped_config):
    with pytest.raises(TwinIDSError, match=r"unknown data\.view 'operator'.*names no roles in data\.views"):
        resolve_view(shipped_config("data=nsl_kdd", "data.view=operator").data)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.view=[]"], r"data\.view is empty"),
        (["data.views.operator=[]", "data.view=operator"], r"data\.views\.operator is empty"),
        (["data.view=[setpoint,setpoint]"], r"data\.view names \['setpoint'\] more than once"),
        (["data.view=3"], r"data\.view must be a role name or a list of features"),
    ],
)
def test_an_empty_repeated_or_malformed_view_is_refused(shipped_config, overrides, message):
    with pytest.raises(TwinIDSError, match=message):
        resolve_view(shipped_config(*overrides).data)


def test_a_feature_the_data_lacks_is_refused_naming_the_key_and_the_features(shipped_config, frame):
    settings = settings_for(shipped_config, "data.views.operator=[sensor_primary,pressure]", "data.view=operator")
    with pytest.raises(TwinIDSError, match=r"data\.views\.operator names \['pressure'\], which are not features"):
        prepare_windows(frame, settings)


@pytest.mark.parametrize("role", ROLES)
def test_a_views_windows_hold_its_features_and_change_nothing_but_the_columns(shipped_config, frame, role):
    everything = prepare_windows(frame, settings_for(shipped_config))
    viewed = prepare_windows(frame, settings_for(shipped_config, f"data.view={role}"))
    role_features = set(shipped_config().data.views[role])

    assert set(viewed.encoder.columns) == role_features
    assert all(any(name.startswith(f) for f in role_features) for name in viewed.feature_names)
    assert viewed.n_features == len(viewed.feature_names) < everything.n_features
    # splits, windows, labels and the rows the encoder was fitted on are those of the run reading every feature
    for split in ("train", "val", "test"):
        assert np.array_equal(viewed.starts[split], everything.starts[split])
        assert np.array_equal(viewed.targets[split], everything.targets[split])
        assert np.array_equal(viewed.attacks[split], everything.attacks[split])
    columns = [everything.feature_names.index(name) for name in viewed.feature_names]
    assert np.array_equal(viewed.rows, everything.rows[:, columns])


def test_dropped_features_apply_inside_the_view(shipped_config, frame):
    settings = settings_for(shipped_config, "data.view=security", "data.drop_features=[dt]")
    assert "dt" not in prepare_windows(frame, settings).encoder.columns
    all_dropped = settings_for(shipped_config, "data.view=[dt]", "data.drop_features=[dt]")
    with pytest.raises(TwinIDSError, match=r"leaves no feature of view \[dt\]"):
        prepare_windows(frame, all_dropped)


def test_no_view_hashes_as_configs_from_before_views(shipped_config):
    cfg = shipped_config()
    before = OmegaConf.create(OmegaConf.to_container(cfg))
    del before.data["view"], before.data["views"]
    assert config_hash(cfg) == config_hash(before) and repeat_hash(cfg) == repeat_hash(before)
    viewed = shipped_config("data.view=operator")
    assert config_hash(viewed) != config_hash(cfg) and repeat_hash(viewed) != repeat_hash(cfg)


def test_a_run_is_refused_another_view_naming_both(shipped_config):
    trained = OmegaConf.to_container(shipped_config("data.view=operator").data)
    check_same_view(trained, shipped_config("data.view=operator").data, "run R")
    check_same_view(trained, shipped_config(f"data.view=[{','.join(trained['views']['operator'])}]").data, "run R")
    with pytest.raises(TwinIDSError, match=r"^run R was trained on view operator and cannot read view security"):
        check_same_view(trained, shipped_config("data.view=security").data, "run R")
    changed_role = shipped_config("data.view=operator", "data.views.operator=[sensor_primary]").data
    with pytest.raises(TwinIDSError, match=r"on view operator \(device_kind, .*\) and cannot read view operator \("):
        check_same_view(trained, changed_role, "run R")
    before_views = {key: value for key, value in trained.items() if key not in ("view", "views")}
    with pytest.raises(TwinIDSError, match=r"trained on view every feature and cannot read view operator"):
        check_same_view(before_views, shipped_config("data.view=operator").data, "run R")


def test_a_checkpoint_from_before_views_reads_every_feature():
    from pathlib import Path

    from twinids.training.model_card import ModelCard

    stored = {"config": {"data": {"name": "synthetic_twin", "window": 20}}, "overrides": [], "class_names": ["n"]}
    data = ModelCard.from_dict(stored, Path("old.ckpt")).config["data"]
    assert data["view"] is None and resolve_view(data).features is None


def test_the_command_line_refuses_an_unknown_view_in_one_line(twinids_cli):
    result = twinids_cli("train", "experiment=smoke", "data.view=pilot")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: unknown data.view 'pilot'; valid: operator | maintenance | security; or null (every feature), or a "
        "list of features, e.g. data.view=[sensor_primary,setpoint]"
    ]


def test_per_role_topics_need_a_topic(twinids_cli):
    result = twinids_cli("data", "simulate", "--out", "twin.csv", "--per-role")
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "error: --per-role publishes one topic per role: it needs --publish mqtt://host:port/topic"
    ]
