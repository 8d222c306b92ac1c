"""The digital twin simulator, specified by its behaviour: determinism, attack effects, the frame contract.

Every run starts from the settings configs/data/synthetic_twin.yaml gives the simulator (as a user's run composes
them) and changes only what a test is about: the simulator itself has no defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from twinids.data.frame import validate_frame
from twinids.errors import TwinIDSError
from twinids.twin import ATTACKS, DEVICE_KINDS, simulate_network
from twinids.twin.schedule import parse_attacks

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "data" / "synthetic_twin.yaml"

KINDS = sorted(DEVICE_KINDS)
STEPS = 500
SENSOR_COLUMNS = ["sensor_primary", "sensor_secondary", "actuator_reported"]


@pytest.fixture(scope="module")
def simulate(source_settings):
    """`simulate(**changes)`: the simulator run with the shipped settings, `changes` on top."""
    return lambda **changes: simulate_network(**source_settings("synthetic_twin", **changes))


@pytest.fixture(scope="module")
def shipped_attacks(source_settings) -> dict:
    """The shipped settings of every attack type (data.source.attacks)."""
    return source_settings("synthetic_twin")["attacks"]


@pytest.fixture(scope="module")
def one_episode(shipped_attacks):
    """`one_episode(attack, length=30, **settings)`: the shipped settings of one attack type, changed to place
    exactly one episode of `length` steps in a run of STEPS steps."""

    def settings_of(attack: str, length: int = 30, **settings: object) -> dict:
        return {attack: {**shipped_attacks[attack], "rate": 1000 / STEPS, "length": [length, length], **settings}}

    return settings_of


@pytest.fixture(scope="module")
def run(simulate):
    """`run(kind, attacks, seed=3)`: one device of `kind` for STEPS steps without packet loss."""
    return lambda kind, attacks, seed=3: simulate(
        seed=seed, n_steps=STEPS, devices=[kind], attacks=attacks, packet_loss=0.0
    )


def episode_rows(frame: pd.DataFrame, attack: str) -> pd.DataFrame:
    rows = frame[frame["attack"] == attack]
    assert len(rows) > 0, f"no {attack} rows"
    return rows


# --- determinism and size ---------------------------------------------------------------------------


def test_same_seed_gives_identical_frame(simulate):
    pd.testing.assert_frame_equal(simulate(seed=7, n_steps=600), simulate(seed=7, n_steps=600))


def test_different_seed_gives_different_readings(simulate):
    first, second = simulate(seed=1, n_steps=600), simulate(seed=2, n_steps=600)
    assert not np.allclose(first["sensor_primary"].head(500), second["sensor_primary"].head(500))


def test_adding_a_device_leaves_the_other_devices_unchanged(simulate):
    alone = simulate(seed=5, n_steps=600, devices={"heated_room": 1})
    crowded = simulate(seed=5, n_steps=600, devices={"heated_room": 2, "conveyor": 1})
    pd.testing.assert_frame_equal(alone, crowded[crowded["device"] == "heated_room_1"].reset_index(drop=True))


def test_default_network_is_six_devices_of_three_kinds_with_about_24k_rows(simulate):
    frame = simulate()
    assert frame["device"].nunique() == 6
    assert set(frame["device_kind"]) == set(KINDS)
    assert 20_000 <= len(frame) <= 30_000
    assert 0.1 < frame["label"].mean() < 0.3
    assert set(frame["attack"]) == {"normal", *ATTACKS} - {"stealthy_injection"}  # that one: experiment=stealthy


@settings(max_examples=15, deadline=None)
@given(n_steps=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_without_attacks_or_loss_every_step_of_every_device_is_one_row(n_steps, seed, simulate):
    frame = simulate(seed=seed, n_steps=n_steps, devices=KINDS, attacks={}, packet_loss=0.0)
    assert frame.groupby("device").size().tolist() == [n_steps] * len(KINDS)
    assert (frame["dt"] == 60.0).all()
    assert (frame["label"] == 0).all()


# --- the frame contract ---------------------------------------------------------------------------


def test_frame_passes_the_tidy_frame_check_with_the_documented_columns(simulate):
    frame = simulate(seed=0, n_steps=800)
    validate_frame(frame, "test")
    assert list(frame.columns) == [
        "device",
        "time",
        "device_kind",
        "sensor_primary",
        "sensor_secondary",
        "twin_primary",
        "twin_secondary",
        "residual_primary",
        "residual_secondary",
        "actuator_command",
        "actuator_reported",
        "setpoint",
        "exogenous",
        "dt",
        "label",
        "attack",
    ]


def test_rows_are_sorted_by_device_then_time(simulate):
    frame = simulate(seed=0, n_steps=800)
    pd.testing.assert_frame_equal(frame, frame.sort_values(["device", "time"], ignore_index=True))


def test_label_is_one_exactly_on_attack_rows(simulate):
    frame = simulate(seed=0, n_steps=800)
    assert ((frame["label"] == 1) == (frame["attack"] != "normal")).all()


def test_accepts_omegaconf_containers_from_hydra(simulate, one_episode):
    devices, attacks = {"water_tank": 1}, one_episode("replay")
    plain = simulate(n_steps=STEPS, devices=devices, attacks=attacks)
    from_config = simulate(n_steps=STEPS, devices=OmegaConf.create(devices), attacks=OmegaConf.create(attacks))
    pd.testing.assert_frame_equal(plain, from_config)


def test_shipped_config_injects_every_attack_type_and_sets_each_of_its_settings(shipped_attacks):
    parsed = parse_attacks(shipped_attacks)
    # stealthy injection joins only with experiment=stealthy: in the default mix it would change every result
    assert list(parsed) == [name for name in ATTACKS if name != "stealthy_injection"]
    for name, type_settings in parsed.items():
        assert set(type_settings) == {"rate", "length", *ATTACKS[name].settings}, name


def test_an_attack_type_missing_a_setting_is_refused_naming_it(shipped_attacks):
    settings = {key: value for key, value in shipped_attacks["replay"].items() if key != "max_lag"}
    with pytest.raises(TwinIDSError, match=r"data\.source\.attacks\.replay: missing setting\(s\) \['max_lag'\]"):
        parse_attacks({"replay": settings})


def test_hydra_instantiates_the_shipped_config_into_a_valid_frame():
    cfg = OmegaConf.create({"seed": 42, "data": OmegaConf.load(CONFIG)})
    frame = instantiate(cfg.data.source, n_steps=600)
    validate_frame(frame, "synthetic_twin")
    assert frame["device"].nunique() == 6


# --- normal operation -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_normal_rows_have_residuals_within_a_few_sensor_noise_stds(kind, run):
    frame = run(kind, attacks={})
    sigma = DEVICE_KINDS[kind].sensor_noise
    residual = frame["residual_primary"].abs() / sigma
    assert residual.median() < 1.5
    assert residual.quantile(0.99) < 5.0


# --- each attack changes exactly what it claims ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fdi_bias_shifts_the_first_attacked_reading_by_the_bias_and_keeps_the_residual_offset(kind, run, one_episode):
    clean = run(kind, attacks={})
    attacked = run(kind, one_episode("false_data_injection", modes=["bias"], magnitude=8.0))
    rows = episode_rows(attacked, "false_data_injection")
    start = rows.index[0]
    sigma = DEVICE_KINDS[kind].sensor_noise
    pd.testing.assert_frame_equal(attacked.loc[: start - 1], clean.loc[: start - 1])
    shift = attacked.loc[start, "sensor_primary"] - clean.loc[start, "sensor_primary"]
    assert abs(shift) == pytest.approx(8.0 * sigma)
    assert (rows["residual_primary"] * np.sign(shift)).median() > 5.0 * sigma


def test_fdi_ramp_grows_linearly_from_a_small_offset(run, one_episode):
    clean = run("heated_room", attacks={})
    attacked = run("heated_room", one_episode("false_data_injection", length=40, modes=["ramp"], magnitude=8.0))
    start = episode_rows(attacked, "false_data_injection").index[0]
    first = attacked.loc[start, "sensor_primary"] - clean.loc[start, "sensor_primary"]
    assert abs(first) == pytest.approx(8.0 * DEVICE_KINDS["heated_room"].sensor_noise / 40)


@pytest.mark.parametrize("kind", KINDS)
def test_replay_rows_repeat_an_earlier_segment_of_the_same_device(kind, run, one_episode):
    clean = run(kind, attacks={})
    rows = episode_rows(run(kind, one_episode("replay")), "replay")
    first = rows.iloc[0]["sensor_primary"]
    lag = rows.index[0] - int(np.flatnonzero(clean["sensor_primary"].to_numpy() == first)[0])
    assert lag >= len(rows)
    source = clean.loc[rows.index - lag, SENSOR_COLUMNS].to_numpy()
    np.testing.assert_array_equal(rows[SENSOR_COLUMNS].to_numpy(), source)


def test_dos_stale_repeats_the_last_delivered_packet(run, one_episode):
    frame = run("water_tank", one_episode("denial_of_service", modes=["stale"]))
    rows = episode_rows(frame, "denial_of_service")
    before = frame.loc[rows.index[0] - 1, SENSOR_COLUMNS].to_numpy(dtype=float)
    np.testing.assert_array_equal(rows[SENSOR_COLUMNS].to_numpy(dtype=float), np.tile(before, (len(rows), 1)))
    assert (rows["dt"] == 60.0).all()
    assert rows["residual_primary"].abs().max() > 5.0 * DEVICE_KINDS["water_tank"].sensor_noise


def test_dos_missing_drops_rows_and_labels_the_row_that_ends_the_gap(run, one_episode):
    clean = run("conveyor", attacks={})
    frame = run("conveyor", one_episode("denial_of_service", length=25, modes=["missing"], drop_probability=1.0))
    assert len(frame) == len(clean) - 25
    rows = episode_rows(frame, "denial_of_service")
    assert len(rows) == 1
    assert rows["dt"].iloc[0] == 26 * 60.0
    assert (frame.drop(rows.index)["dt"] == 60.0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_spoofed_readings_are_plausible_yet_not_the_real_ones(kind, run, one_episode):
    clean = run(kind, attacks={})
    rows = episode_rows(run(kind, one_episode("spoofing")), "spoofing")
    half_width = DEVICE_KINDS[kind].spoof_half_width
    assert ((rows["sensor_primary"] - rows["setpoint"]).abs() <= half_width).all()
    assert not np.isclose(rows["sensor_primary"], clean.loc[rows.index, "sensor_primary"]).any()


@pytest.mark.parametrize("kind", KINDS)
def test_command_injection_makes_the_plant_diverge_from_the_twin_behind_forged_feedback(kind, run, one_episode):
    frame = run(kind, one_episode("command_injection", length=40))
    rows = episode_rows(frame, "command_injection")
    normal = frame[frame["label"] == 0]
    assert (rows["actuator_reported"] == rows["actuator_command"]).all()
    meter_sigma = DEVICE_KINDS[kind].meter_noise
    assert rows["residual_secondary"].abs().median() > 5.0 * meter_sigma
    diverged = rows["residual_primary"].abs().tail(10).min()
    assert diverged > 4.0 * normal["residual_primary"].abs().quantile(0.99)


def test_command_injection_without_forging_reports_the_hijacked_actuator(run, one_episode):
    frame = run("heated_room", one_episode("command_injection", forge_feedback=False))
    rows = episode_rows(frame, "command_injection")
    assert (rows["actuator_reported"] != rows["actuator_command"]).mean() > 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_stealthy_injection_forges_readings_the_twin_predicts_so_its_residual_sees_only_the_ramp(kind, run):
    from twinids.config import compose

    stealthy = dict(compose(["experiment=stealthy"]).data.source.attacks.stealthy_injection)
    frame = run(kind, {"stealthy_injection": {**stealthy, "rate": 1000 / STEPS, "length": [80, 80]}})
    rows = episode_rows(frame, "stealthy_injection")
    normal = frame[frame["label"] == 0]
    assert (rows["actuator_reported"] == rows["actuator_command"]).all()
    sigma = DEVICE_KINDS[kind].sensor_noise
    ramp = rows["residual_primary"].to_numpy()
    # the forged readings follow the twin: the residual stays within the ramp's reach (at most 10 sigma) and noise
    assert np.abs(ramp).max() < 10 * sigma + 6 * normal["residual_primary"].std()
    # yet they are not the device's readings: the controller acts on them, so its commands leave those it gives the
    # same device, with the same plant noise, never attacked
    clean = run(kind, {}).set_index("time").loc[rows["time"], "actuator_command"].to_numpy()
    assert (clean != rows["actuator_command"].to_numpy()).any()


# --- bad arguments are refused with a message naming the config key and the options -------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"devices": {"toaster": 1}},
            "data.source.devices: unknown device kind 'toaster'; valid kinds are ['conveyor'",
        ),
        ({"devices": [{"kind": "conveyor", "colour": "red"}]}, "unknown parameter(s) ['colour']"),
        ({"devices": {"conveyor": -1}}, "data.source.devices.conveyor must be an integer >= 0; got -1"),
        ({"devices": {"conveyor": True}}, "data.source.devices.conveyor must be an integer >= 0; got True"),
        ({"devices": {}}, "no devices configured"),
        ({"attacks": {"ddos": {}}}, "unknown attack type 'ddos'; valid types are ['false_data_injection'"),
        ({"attacks": None}, "data.source.attacks must be a mapping of attack type -> settings"),
        ({"attacks": {"replay": {"rate": -1}}}, "data.source.attacks.replay.rate must be a number in [0, inf]"),
        ({"attacks": {"replay": {"speed": 2}}}, "data.source.attacks.replay: unknown setting(s) ['speed']"),
        ({"attacks": {"replay": {"length": [30, 10]}}}, "data.source.attacks.replay.length must be [low, high]"),
        ({"attacks": {"replay": {"max_lag": True}}}, "data.source.attacks.replay.max_lag must be an integer >= 1"),
        ({"attacks": {"denial_of_service": {"modes": ["flood"]}}}, "valid are ['stale', 'missing']"),
        ({"n_steps": 100}, "data.source.n_steps=100 is too small for the configured attacks"),
        ({"n_steps": 0}, "data.source.n_steps must be an integer >= 1"),
        ({"seed": -1}, "data.source.seed must be an integer >= 0"),
        ({"step_seconds": 0}, "data.source.step_seconds must be a number in (0, inf]"),
        ({"twin_gain": 2.0}, "data.source.twin_gain must be a number in [0, 1]"),
        ({"packet_loss": True}, "data.source.packet_loss must be a number in [0, 1)"),
    ],
)
def test_bad_settings_raise_twinids_error_naming_the_config_key(changes, expected, simulate, shipped_attacks):
    """Each case changes one setting of the shipped config (attack settings merge over the shipped ones)."""
    if isinstance(changes.get("attacks"), dict):
        changes = {"attacks": {name: {**shipped_attacks.get(name, {}), **s} for name, s in changes["attacks"].items()}}
    with pytest.raises(TwinIDSError) as error:
        simulate(**{"n_steps": 1000, **changes})
    assert expected in str(error.value)
