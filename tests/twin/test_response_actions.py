"""What the simulator does when the platform responds (issue 17 §3): each action changes the plant as it says, and
a run without responses, twin alongside, streams exactly what the simulator streams.

Every run starts from the shipped simulator settings (configs/data/synthetic_twin.yaml) and changes what a test is
about.
"""

from __future__ import annotations

import numpy as np
import pytest

from twinids.twin.impact import device_impact
from twinids.twin.network import plan_devices, simulate_devices
from twinids.twin.response import NO_RESPONSE, Response
from twinids.twin.stream import COLUMNS, DeviceLoop, PlantTrace

STEPS = 400


@pytest.fixture(scope="module")
def settings(source_settings):
    """`settings(**changes)`: the shipped simulator settings, without packet loss, STEPS steps, changed."""
    return lambda **changes: source_settings("synthetic_twin", **{"n_steps": STEPS, "packet_loss": 0.0, **changes})


@pytest.fixture(scope="module")
def one_episode(settings):
    """`one_episode(attack, **type_settings)`: one episode of 120 steps of `attack` in a run of STEPS steps."""

    def attacks(attack: str, **type_settings: object) -> dict:
        shipped = settings()["attacks"][attack]
        return {attack: {**shipped, "rate": 1000 / STEPS, "length": [120, 120], **type_settings}}

    return attacks


def run_loop(source: dict, device: int = 0, response: Response = NO_RESPONSE) -> DeviceLoop:
    """One device of `source` stepped to the end under `response`, its twin alongside."""
    plan = plan_devices(
        source["seed"],
        source["n_steps"],
        source["step_seconds"],
        source["devices"],
        source["attacks"],
        source["replica"],
    )[device]
    loop = DeviceLoop(
        plan.model,
        plan.episodes,
        source["n_steps"],
        plan.noise_rng,
        plan.schedule_rng,
        source["packet_loss"],
        (source["twin_gain"], source["twin_gate"]),
    )
    for _ in range(source["n_steps"]):
        loop.step(response)
    return loop


def test_a_loop_with_its_twin_alongside_streams_what_the_simulator_streams(settings):
    source = settings(packet_loss=0.05, seed=4, n_steps=1500)  # room for every shipped attack type
    simulated = simulate_devices(**{k: v for k, v in source.items() if k != "_target_"})
    for index, (name, (_, _, stream)) in enumerate(simulated.items()):
        loop = run_loop(source, index)
        assert {column: loop.rows[column] for column in COLUMNS} == stream.rows, name
        np.testing.assert_array_equal(loop.plant().state, stream.plant.state)


def test_a_replica_is_the_same_plant_with_new_weather_noise_and_attacks(settings):
    def plans(replica):
        source = settings(replica=replica, n_steps=1500)
        return plan_devices(source["seed"], 1500, source["step_seconds"], source["devices"], source["attacks"], replica)

    own, other, again = plans(None), plans(1), plans(1)
    assert [plan.model for plan in own] == [plan.model for plan in other]  # the same devices, constant for constant
    assert [plan.episodes for plan in own] != [plan.episodes for plan in other]
    assert own[0].noise_rng.random() != other[0].noise_rng.random() == again[0].noise_rng.random()


@pytest.mark.parametrize("kind", ["conveyor", "water_tank"])
def test_isolating_the_command_channel_keeps_injected_commands_from_the_actuator(settings, one_episode, kind):
    attacked = settings(devices=[kind], attacks=one_episode("command_injection"))
    clean = run_loop(settings(devices=[kind], attacks={})).plant()
    undefended = run_loop(attacked).plant()
    isolated = run_loop(attacked, response=Response(isolate_commands=True)).plant()
    assert not np.array_equal(undefended.state, clean.state)
    # the forged feedback still reaches the platform, but the plant runs as if no command had been injected
    np.testing.assert_array_equal(isolated.state, clean.state)
    np.testing.assert_array_equal(isolated.applied, clean.applied)


@pytest.mark.parametrize("kind", ["heated_room", "water_tank", "conveyor"])
def test_the_controller_on_the_twin_estimate_holds_the_plant_through_false_data_injection(settings, one_episode, kind):
    bias = one_episode("false_data_injection", modes=["bias"], magnitude=[12, 12])  # 12 sensor-noise stds
    attacked = settings(devices=[kind], attacks=bias, seed=4)
    model = plan_devices(4, STEPS, attacked["step_seconds"], [kind], {}, None)[0].model
    clean = device_impact(run_loop(settings(devices=[kind], attacks={}, seed=4)).plant(), model).band_minutes
    undefended = device_impact(run_loop(attacked).plant(), model).band_minutes - clean
    defended = device_impact(run_loop(attacked, response=Response(use_twin_estimate=True)).plant(), model)
    assert undefended > 20  # minutes out of the safe band the attack caused
    assert defended.band_minutes - clean < undefended / 4


def test_rate_limiting_a_flood_lets_the_device_packets_through(settings, one_episode):
    flood = one_episode("denial_of_service", modes=["missing"], drop_probability=1.0)
    undefended = run_loop(settings(devices=["water_tank"], attacks=flood))
    limited = run_loop(settings(devices=["water_tank"], attacks=flood), response=Response(rate_limit=True))
    assert undefended.delivered.sum() == STEPS - 120
    assert limited.delivered.all()
    assert "denial_of_service" in limited.rows["attack"]  # still the attacker's time: the labels say so


def test_impact_counts_minutes_out_of_the_safe_band_and_actuator_hours(settings):
    model = plan_devices(0, 10, 60.0, ["heated_room"], {}, None)[0].model  # safe band 1 °C, one-minute steps
    setpoint = np.full(4, 21.0)
    state = setpoint + np.array([0.0, 2.0, 0.5, -3.0])
    plant = PlantTrace(state=state, setpoint=setpoint, applied=np.array([1.0, 1.0, 0.0, 1.0]))
    impact = device_impact(plant, model)
    assert impact.band_minutes == 2.0
    assert impact.actuator_hours == pytest.approx(3 / 60)
