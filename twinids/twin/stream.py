"""One device's telemetry stream: noisy physical plant, field controller, attack episodes, virtual twin.

Per step t: the sensors read the plant (primary from the state, secondary from the interval that just
ended); attacks may rewrite or drop that packet; the controller acts on what was delivered; an injected
command may override the actuator; the plant advances one step. The virtual twin reads the delivered packets
and the commands but steers nothing, so it follows the finished stream (`follow_twin`): the same code
recomputes its columns when an attacker rewrites the delivered readings (`twinids.twin.link`).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class TwinInputs:
    """What one device's virtual twin runs on besides the delivered packets (all known to the platform).

    Attributes:
        initial_state: the plant's state at step 0, where the twin starts.
        commands: (n_steps + 1,) the controller's command in force while step t's reading was made; the twin
            advances from step t under `commands[t + 1]`, the command set after that reading.
        exogenous: (n_steps,) the measured input per step.
        delivered: (n_steps,) whether a packet arrived at step t (a row of the stream).
    """

    initial_state: float
    commands: np.ndarray
    exogenous: np.ndarray
    delivered: np.ndarray


@dataclass(frozen=True)
class DeviceStream:
    """One simulated device: its delivered rows (column lists, see COLUMNS) and what its twin ran on."""

    rows: dict[str, list[Any]]
    twin_inputs: TwinInputs


def follow_twin(
    model: DeviceModel,
    inputs: TwinInputs,
    packets: np.ndarray,
    gain: float,
    gate: float,
    *,
    start: tuple[int, int, tuple[float, float, bool]] | None = None,
    states: list[tuple[float, float, bool]] | None = None,
) -> np.ndarray:
    """The virtual twin's expectation (primary, secondary) before each delivered packet, as (rows, 2).

    `packets` holds the delivered (primary, secondary, actuator) readings, one row per delivered step.
    `start` = (step, row, twin state) resumes at a step whose state an earlier call recorded into `states`
    (one (primary, secondary, hijacked) per step, before it); the returned rows then begin at `row`.
    """
    twin = VirtualTwin(model, inputs.initial_state, float(inputs.commands[0]), float(inputs.exogenous[0]), gain, gate)
    first_step, row = 0, 0
    if start is not None:
        first_step, row, (twin.primary, twin.secondary, twin.actuator_hijacked) = start
    first_row = row
    expected = np.empty((len(packets) - first_row, 2))
    commands, exogenous, delivered = inputs.commands.tolist(), inputs.exogenous.tolist(), inputs.delivered.tolist()
    readings = packets.tolist()
    for t in range(first_step, len(delivered)):
        if states is not None:
            states.append((twin.primary, twin.secondary, twin.actuator_hijacked))
        if delivered[t]:
            expected[row - first_row] = twin.primary, twin.secondary
            twin.observe(Packet(*readings[row]), commands[t])
            row += 1
        twin.advance(commands[t + 1], exogenous[t])
    return expected


def run_device(
    model: DeviceModel,
    episodes: list[Episode],
    n_steps: int,
    noise_rng: np.random.Generator,
    schedule_rng: np.random.Generator,
    twin_gain: float,
    twin_gate: float,
    packet_loss: float,
) -> DeviceStream:
    """Simulate one device for `n_steps`: its delivered rows (see COLUMNS) and the inputs its twin ran on."""
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
    initial_state, commands, delivered = state, [command], np.zeros(n_steps, dtype=bool)
    history: list[Packet] = []
    last_delivered: Packet | None = None
    pending_gap = NORMAL  # a dropped-by-attack packet labels the next delivered row: its gap is the attack
    rows: dict[str, list[Any]] = {column: [] for column in COLUMNS if column not in ("twin_primary", "twin_secondary")}
    exogenous_steps = exogenous

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
                command,
                packet.actuator,
                setpoint[t],
                exogenous[t],
                int(attack != NORMAL),
                attack,
            )
            for column, value in zip(rows, values, strict=True):
                rows[column].append(value)
            last_delivered, pending_gap = packet, NORMAL
            delivered[t] = True

        command = controller.update(None if packet is None else packet.primary, float(setpoint[t]))
        commands.append(command)
        applied = command
        upcoming = episodes[active[t + 1]] if active[t + 1] >= 0 else None
        if upcoming is not None:
            applied = upcoming.actuate(t + 1 - upcoming.start, command, model)
        next_state, next_meter = model.advance(state, applied, exogenous[t], disturbance[t])
        state, meter = float(next_state), float(next_meter)
    inputs = TwinInputs(initial_state, np.asarray(commands), np.asarray(exogenous_steps, dtype=np.float64), delivered)
    packets = np.column_stack([rows["sensor_primary"], rows["sensor_secondary"], rows["actuator_reported"]])
    expected = follow_twin(model, inputs, packets.reshape(-1, 3), twin_gain, twin_gate)
    rows["twin_primary"], rows["twin_secondary"] = expected[:, 0].tolist(), expected[:, 1].tolist()
    return DeviceStream({column: rows[column] for column in COLUMNS}, inputs)
