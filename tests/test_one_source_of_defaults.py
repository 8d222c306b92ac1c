"""Each default lives in one YAML file: what a config sets, the Python it builds takes as a required argument.

A parameter default beside a YAML value (BATADAL's `protocol`, UNSW-NB15's `deduplicate`, the LSTM's width once
disagreed) lets a test pass on a configuration no user runs. These tests read every data source and every net the
shipped configs name, and every function the data and scoring settings reach, and fail on such a default.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from twinids.data.datamodule import WindowDataModule
from twinids.data.encoding import FeatureEncoder
from twinids.data.prepare import WindowSettings
from twinids.data.splits import assign_splits
from twinids.data.windows import window_label_rows, window_starts
from twinids.scoring import ResidualScorer, smooth, threshold_for_fpr
from twinids.twin import ATTACKS
from twinids.twin.schedule import COMMON_SETTINGS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DATA_CONFIGS = sorted((CONFIGS / "data").glob("*.yaml"))
NET_CONFIGS = [
    path for path in sorted((CONFIGS / "model").glob("*.yaml")) if "net" in OmegaConf.load(path).get("module", {})
]
SIZES_FROM_DATA = {"n_features", "n_classes"}  # a net's sizes come from the data, never from the YAML

# Functions the composed settings reach without a `_target_`: (function, its parameters a YAML key sets, the key).
SETTINGS_REACHED = [
    (FeatureEncoder, ["scaler"], "data.scaler"),
    (assign_splits, ["method", "val_fraction", "test_fraction", "val_devices", "test_devices"], "data.split"),
    (window_starts, ["window", "stride"], "data.window, data.stride"),
    (window_label_rows, ["window", "mode"], "data.window, data.label_mode"),
    (WindowDataModule, ["batch_size", "eval_batch_size", "num_workers"], "data.*batch_size, data.num_workers"),
    (ResidualScorer, ["kind"], "model.module.scorer.kind"),
    (smooth, ["span"], "model.module.scorer.smooth"),
    (threshold_for_fpr, ["target_fpr"], "model.module.threshold.target_fpr"),
]


def defaulted(function: Callable, keys: Iterable[str]) -> list[str]:
    """Those of `keys` that `function` takes with a default value (or does not take at all)."""
    parameters = inspect.signature(function).parameters
    return [key for key in keys if key not in parameters or parameters[key].default is not inspect.Parameter.empty]


def required(function: Callable) -> set[str]:
    """The parameters of `function` without a default (keyword or positional, not *args/**kwargs)."""
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is inspect.Parameter.empty and parameter.kind not in kinds
    }


def source_node(path: Path) -> dict:
    """The `source` node of a data config, interpolations left as written."""
    return OmegaConf.to_container(OmegaConf.load(path).source, resolve=False)


def net_node(path: Path) -> dict:
    """The `module.net` node of a model config."""
    return OmegaConf.to_container(OmegaConf.load(path).module.net, resolve=False)


def test_the_guard_catches_a_default_beside_the_yaml():
    def loader(root: str, protocol: str = "standard", seed: int = 0) -> None: ...

    assert defaulted(loader, ["root", "protocol", "seed"]) == ["protocol", "seed"]
    assert defaulted(loader, ["window"]) == ["window"]  # a key the function does not take is caught too
    assert required(loader) == {"root"}


def test_every_shipped_data_and_net_config_is_checked():
    assert {path.stem for path in DATA_CONFIGS} >= {
        "batadal",
        "csv",
        "nsl_kdd",
        "synthetic_twin",
        "ton_iot",
        "unsw_nb15",
    }
    assert {path.stem for path in NET_CONFIGS} >= {"lstm", "lstm_autoencoder", "lstm_forecaster", "lstm_sae_mha"}


@pytest.mark.parametrize("path", DATA_CONFIGS, ids=lambda path: path.stem)
def test_a_data_source_takes_every_setting_its_yaml_gives_without_a_default(path):
    source = source_node(path)
    loader = get_object(source.pop("_target_"))
    assert defaulted(loader, source) == [], f"{path.name}: give these settings no default in {loader.__qualname__}"


@pytest.mark.parametrize("path", DATA_CONFIGS, ids=lambda path: path.stem)
def test_a_data_sources_yaml_sets_every_argument_its_loader_requires(path):
    source = source_node(path)
    loader = get_object(source.pop("_target_"))
    assert required(loader) <= set(source), f"{path.name} must set every argument of {loader.__qualname__}"


@pytest.mark.parametrize("path", NET_CONFIGS, ids=lambda path: path.stem)
def test_a_net_takes_every_setting_its_yaml_gives_without_a_default(path):
    net = net_node(path)
    net_class = get_object(net.pop("_target_"))
    assert defaulted(net_class, net) == [], f"{path.name}: give these net settings no default in {net_class.__name__}"


@pytest.mark.parametrize("path", NET_CONFIGS, ids=lambda path: path.stem)
def test_a_nets_yaml_sets_every_argument_but_the_sizes_from_the_data(path):
    net = net_node(path)
    net_class = get_object(net.pop("_target_"))
    assert required(net_class) - SIZES_FROM_DATA == set(net) - SIZES_FROM_DATA, path.name


def test_every_attack_type_takes_its_settings_from_the_yaml_alone():
    attacks = dict(source_node(CONFIGS / "data" / "synthetic_twin.yaml")["attacks"])
    # stealthy injection's settings live in the overlay that adds it to the default mix
    attacks.update(OmegaConf.load(CONFIGS / "experiment" / "stealthy.yaml")["data"]["source"]["attacks"])
    assert set(attacks) == set(ATTACKS)
    for name, settings in attacks.items():
        assert set(settings) == {*COMMON_SETTINGS, *ATTACKS[name].settings}, name
        assert not hasattr(ATTACKS[name], "defaults"), f"{name}: attack settings have no Python defaults"


def test_the_window_settings_have_no_defaults():
    defaults = [field.name for field in dataclasses.fields(WindowSettings) if field.default is not dataclasses.MISSING]
    assert defaults == []


@pytest.mark.parametrize(
    ("function", "keys", "config_key"),
    SETTINGS_REACHED,
    ids=[function.__qualname__ for function, *_ in SETTINGS_REACHED],
)
def test_functions_the_settings_reach_take_them_without_a_default(function, keys, config_key):
    assert defaulted(function, keys) == [], f"{config_key} has a Python default in {function.__qualname__}"
