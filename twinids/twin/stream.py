"""One device's telemetry stream: noisy physical plant, field controller, attack episodes, virtual twin.

Per step t: the sensors read the plant (primary from the state, secondary from the interval that just
ended); attacks may rewrite or drop that packet; the controller acts on what was delivered; an injected
command may override the actuator; the plant and its twin then advance one step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twinids.data.frame import NORMAL
from twinids.twin.attacks import Episode, Packet, StepContext
from twinids.twin.devices import DeviceModel, ornstein_uhlenbeck
from twinids.twin.virtual_twin import VirtualTwin

COLUMNS = (
    "time",
    "sensor_primary",
    "sensor_secondary",
    "twin_primary",
    "twin_secondary",
    "actuator_command",
    "actuator_reported",
    "setpoint",
    "exogenous",
    "label",
    "attack",
)


def run_device(
    model: DeviceModel,
    episodes: list[Episode],
    n_steps: int,
    noise_rng: np.random.Generator,
    schedule_rng: np.random.Generator,
    twin_gain: float,
    twin_gate: float,
    packet_loss: float,
) -> dict[str, Any]:
    """Simulate one device for `n_steps` and return its delivered rows as column lists (see COLUMNS)."""
    setpoint, exogenous = model.schedule(n_steps, schedule_rng)
    disturbance = ornstein_uhlenbeck(n_steps, model.disturbance_std, model.disturbance_steps, noise_rng)
    sensor_shocks = noise_rng.standard_normal((n_steps, 2))
    lost = noise_rng.random(n_steps) < packet_loss
    active = np.full(n_steps + 1, -1)
    for index, episode in enumerate(episodes):
        active[episode.start : episode.start + episode.length] = index

    controller = model.controller(float(setpoint[0]))
    command = applied = controller.command
    state = float(setpoint[0])
    meter = float(model.advance(state, applied, exogenous[0], 0.0)[1])
    twin = VirtualTwin(model, state, command, exogenous[0], twin_gain, twin_gate)
    history: list[Packet] = []
    last_delivered: Packet | None = None
    pending_gap = NORMAL  # a dropped-by-attack packet labels the next delivered row: its gap is the attack
    rows: dict[str, list[Any]] = {column: [] for column in COLUMNS}

    # Python lists index several times faster than numpy arrays in this per-step loop.
    setpoint, exogenous, disturbance = setpoint.tolist(), exogenous.tolist(), disturbance.tolist()
    sensor_shocks, lost, active = sensor_shocks.tolist(), lost.tolist(), active.tolist()
    for t in range(n_steps):
        raw = Packet(
            primary=state + model.sensor_noise * sensor_shocks[t][0],
            secondary=meter + model.meter_noise * sensor_shocks[t][1],
            actuator=applied,
        )
        history.append(raw)
        episode = episodes[active[t]] if active[t] >= 0 else None
        packet: Packet | None = raw
        if episode is not None:
            ctx = StepContext(
                model=model,
                setpoint=float(setpoint[t]),
                exogenous=float(exogenous[t]),
                command=command,
                history=history,
                last_delivered=last_delivered,
            )
            packet = episode.tamper(t - episode.start, raw, ctx)
            if packet is None:
                pending_gap = episode.name
        elif lost[t]:
            packet = None
        if packet is not None:
            attack = episode.name if episode is not None else pending_gap
            values = (
                t * model.step_seconds,
                packet.primary,
                packet.secondary,
                twin.primary,
                twin.secondary,
                command,
                packet.actuator,
                setpoint[t],
                exogenous[t],
                int(attack != NORMAL),
                attack,
            )
            for column, value in zip(COLUMNS, values, strict=True):
                rows[column].append(value)
            last_delivered, pending_gap = packet, NORMAL

        twin.observe(packet, command)
        command = controller.update(None if packet is None else packet.primary, float(setpoint[t]))
        applied = command
        upcoming = episodes[active[t + 1]] if active[t + 1] >= 0 else None
        if upcoming is not None:
            applied = upcoming.actuate(t + 1 - upcoming.start, command, model)
        next_state, next_meter = model.advance(state, applied, exogenous[t], disturbance[t])
        state, meter = float(next_state), float(next_meter)
        twin.advance(command, float(exogenous[t]))
    return rows
