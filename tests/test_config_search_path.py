"""The config search path: the packaged tree, plus the user's folders ($TWINIDS_CONFIG_PATH, ./configs) on top."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from twinids.config import (
    CONFIG_DIR_ENV,
    CONFIG_PATH_ENV,
    compose,
    config_dir,
    config_file,
    group_options,
    packaged_config_dir,
)
from twinids.errors import TwinIDSError

TINY_TWIN = """\
# The simulator with few steps per device: the user's own dataset option.
defaults:
  - synthetic_twin
  - _self_
name: tiny_twin
source:
  n_steps: 900
"""

QUICK_EXPERIMENT = """\
# @package _global_
defaults:
  - override /data: tiny_twin
trainer:
  max_epochs: 1
run_name: quick
"""


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def user_configs(tmp_path, monkeypatch) -> Path:
    """A user's config folder on $TWINIDS_CONFIG_PATH holding a new data option and an experiment using it."""
    folder = tmp_path / "my-configs"
    write(folder, "data/tiny_twin.yaml", TINY_TWIN)
    write(folder, "experiment/quick.yaml", QUICK_EXPERIMENT)
    monkeypatch.setenv(CONFIG_PATH_ENV, str(folder))
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return folder


def test_without_user_folders_the_packaged_tree_is_the_config_tree(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert config_dir() == packaged_config_dir().resolve()
    assert (config_dir() / "train.yaml").is_file()
    assert "synthetic_twin" in group_options("data")


def test_a_users_data_option_is_listed_beside_the_packaged_ones(user_configs):
    options = group_options("data")
    assert "tiny_twin" in options
    assert {"synthetic_twin", "csv"} <= set(options)


def test_a_users_data_option_can_extend_a_packaged_one(user_configs):
    cfg = compose(["data=tiny_twin"])
    assert cfg.data.name == "tiny_twin"
    assert cfg.data.source.n_steps == 900
    assert cfg.data.source.step_seconds == compose().data.source.step_seconds  # the rest comes from the package


def test_a_users_experiment_overlay_composes_with_the_users_data_option(user_configs):
    cfg = compose(["experiment=quick"])
    assert (cfg.data.name, cfg.trainer.max_epochs, cfg.run_name) == ("tiny_twin", 1, "quick")
    assert cfg.model.name == "lstm"  # untouched groups keep the packaged defaults


def test_command_line_overrides_still_win_over_a_users_overlay(user_configs):
    assert compose(["experiment=quick", "trainer.max_epochs=3"]).trainer.max_epochs == 3


def test_a_configs_folder_in_the_working_directory_is_searched(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "configs", "data/tiny_twin.yaml", TINY_TWIN)
    assert compose(["data=tiny_twin"]).data.source.n_steps == 900


def test_config_path_folders_come_before_the_working_directory_configs(user_configs, tmp_path):
    write(tmp_path / "configs", "data/tiny_twin.yaml", TINY_TWIN.replace("n_steps: 900", "n_steps: 1200"))
    assert compose(["data=tiny_twin"]).data.source.n_steps == 900


def test_several_config_path_folders_are_searched_in_order(user_configs, tmp_path, monkeypatch):
    first = tmp_path / "first"
    write(first, "data/tiny_twin.yaml", TINY_TWIN.replace("n_steps: 900", "n_steps: 700"))
    monkeypatch.setenv(CONFIG_PATH_ENV, os.pathsep.join([str(first), str(user_configs)]))
    assert compose(["data=tiny_twin"]).data.source.n_steps == 700
    assert compose(["experiment=quick"]).trainer.max_epochs == 1  # found in the second folder


def test_a_users_file_replaces_the_packaged_option_of_the_same_name(user_configs):
    trainer = OmegaConf.load(config_dir() / "trainer" / "default.yaml")
    trainer.max_epochs = 77
    write(user_configs, "trainer/default.yaml", OmegaConf.to_yaml(trainer))
    assert compose().trainer.max_epochs == 77
    assert config_file("trainer", "default") == user_configs / "trainer" / "default.yaml"


def test_an_unknown_option_lists_the_users_options_too(user_configs):
    with pytest.raises(TwinIDSError, match=r"unknown option 'nope'.*tiny_twin"):
        compose(["data=nope"])


def test_a_config_path_naming_a_missing_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path / "missing"))
    with pytest.raises(TwinIDSError, match=rf"^{CONFIG_PATH_ENV} names '.*missing', which is not a folder$"):
        compose()


def test_config_dir_env_still_replaces_the_whole_tree(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    tree = tmp_path / "tree"
    write(tree, "train.yaml", "defaults:\n  - _self_\nseed: 5\n")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tree))
    assert compose().seed == 5


def test_config_dir_env_without_train_yaml_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    with pytest.raises(TwinIDSError, match=r"^config tree not found at "):
        compose()


def test_data_list_shows_a_users_dataset_with_its_card(twinids_cli, user_configs):
    result = twinids_cli("data", "list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("tiny_twin"))
    assert "The simulator with few steps per device" in line
