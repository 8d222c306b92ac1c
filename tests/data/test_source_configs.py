"""The `configs/data/` files of the real-dataset sources: one shape, arguments their loaders accept.

Each file holds only what differs from the shared defaults in `configs/data/common/windows.yaml`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_method, instantiate
from omegaconf import OmegaConf

from twinids.data.frame import validate_frame

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
SOURCES = ["ton_iot", "batadal", "nsl_kdd", "unsw_nb15", "csv"]
KEYS = {
    "name",
    "root",
    "source",
    "window",
    "stride",
    "label_mode",
    "classes",
    "split",
    "scaler",
    "devices",
    "batch_size",
    "eval_batch_size",
    "num_workers",
    "link",
    "plcs",
    "allow_undefined_metrics",
    "train_on",
    "train_half",
    "train_half_block",
    "holdout_attacks",
    "drop_features",
    "view",
    "views",
}


def config(name: str):
    """A dataset's config as Hydra composes it (shared defaults, then the file), interpolations unresolved."""
    own = OmegaConf.load(CONFIGS / f"{name}.yaml")
    assert list(own.pop("defaults")) == ["common/windows@_here_", "_self_"]
    return OmegaConf.merge(OmegaConf.load(CONFIGS / "common" / "windows.yaml"), own)


@pytest.mark.parametrize("name", SOURCES)
def test_config_has_the_shared_shape(name):
    cfg = config(name)
    assert set(cfg.keys()) == KEYS and cfg.name == name
    assert OmegaConf.to_container(cfg.split).keys() == {
        "method",
        "val_fraction",
        "test_fraction",
        "val_devices",
        "test_devices",
    }
    assert (CONFIGS / f"{name}.yaml").read_text().startswith("# ")
    assert f"datasets/{name}.md" in (CONFIGS / f"{name}.yaml").read_text().splitlines()[0]


@pytest.mark.parametrize("name", SOURCES)
def test_a_file_repeats_no_shared_default(name):
    shared = OmegaConf.load(CONFIGS / "common" / "windows.yaml")
    own = OmegaConf.load(CONFIGS / f"{name}.yaml")
    for key in set(own) & set(shared):
        assert own[key] != shared[key] or key == "split", key
    assert "split" not in own or own.split.keys() == {"method"}


@pytest.mark.parametrize("name", SOURCES)
def test_hydra_composes_the_file_on_top_of_the_shared_defaults(name):
    from twinids.config import compose

    composed = compose(
        [f"data={name}", "data.root=/data", "data.source.path=x.csv"]
        if name == "csv"
        else [f"data={name}", "data.root=/data"]
    ).data
    expected = config(name)
    expected.root = "/data"
    if name == "csv":
        expected.source.path = "x.csv"
    assert OmegaConf.to_container(composed) == OmegaConf.to_container(expected, resolve=True)


@pytest.mark.parametrize("name", SOURCES)
def test_config_arguments_bind_to_the_loader_signature(name):
    source = OmegaConf.to_container(config(name).source)
    loader = get_method(source.pop("_target_"))
    inspect.signature(loader).bind(**source)


@pytest.mark.parametrize("name", ["nsl_kdd", "unsw_nb15"])
def test_flow_datasets_use_windows_of_one(name):
    assert config(name).window == 1


def test_root_defaults_to_twinids_data_holding_one_folder_per_dataset(monkeypatch):
    monkeypatch.setenv("TWINIDS_DATA", "/somewhere")
    assert config("ton_iot").source.root == "/somewhere/ton_iot"
    assert config("csv").source.root == "/somewhere"


def test_hydra_builds_a_frame_from_list_config_arguments(shared_datasets):
    cfg = config("ton_iot")
    cfg.root = str(shared_datasets)
    cfg.source.devices = ["Garage_Door"]
    frame = validate_frame(instantiate(cfg.source), "ton_iot")
    assert set(frame["device"]) == {"garage_door"}


def test_hydra_builds_a_csv_frame_from_dict_config_label_values(tmp_path):
    (tmp_path / "plant.csv").write_text("x,verdict\n1,ok\n2,bad\n3,ok\n4,bad\n")
    cfg = config("csv")
    cfg.root = str(tmp_path)
    cfg.source.path = "plant.csv"
    cfg.source.label_column = "verdict"
    cfg.source.label_values = {"ok": 0, "bad": 1}
    assert instantiate(cfg.source)["label"].tolist() == [0, 1, 0, 1]
