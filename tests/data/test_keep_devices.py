"""`data.devices`: the rows of some devices only (a federated client's share of a dataset), before any fitting."""

from __future__ import annotations

import pytest

from twinids.data.registry import build_windows, load_frame
from twinids.errors import TwinIDSError


def test_only_the_named_devices_rows_are_kept(shipped_config):
    cfg = shipped_config("data.source.n_steps=900")
    every = load_frame(cfg.data)
    cfg.data.devices = ["heated_room_1", "water_tank_2"]
    some = load_frame(cfg.data)
    assert sorted(some["device"].unique()) == ["heated_room_1", "water_tank_2"]
    assert len(some) == int(every["device"].isin(["heated_room_1", "water_tank_2"]).sum())


def test_a_device_the_data_lacks_is_refused_naming_the_devices_it_has(shipped_config):
    cfg = shipped_config("data.source.n_steps=900", "data.devices=[heated_room_1,boiler_9]")
    with pytest.raises(TwinIDSError, match=r"data.devices names \['boiler_9'\].*its devices: conveyor_1"):
        build_windows(cfg.data)


def test_the_scaler_of_a_devices_share_is_fitted_on_its_own_rows(shipped_config):
    cfg = shipped_config("data.source.n_steps=900", "data.drop_features=[device_kind]")
    mixed = build_windows(cfg.data)
    cfg.data.devices = ["conveyor_1", "conveyor_2"]
    conveyors = build_windows(cfg.data)
    assert conveyors.feature_names == mixed.feature_names  # one feature space: clients can share one model
    assert conveyors.encoder.state()["statistics"] != mixed.encoder.state()["statistics"]
