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
from twinids.twin.response import NO_RESPONSE, Response
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
class PlantTrace:
    """The real plant per step, which the platform never sees: what physical impact is measured on.

    Attributes:
        state: (n_steps,) the primary quantity when step t's reading was made (before sensor noise).
        setpoint: (n_steps,) the setpoint in force at step t.
        applied: (n_steps,) the actuator value really applied over the interval after step t.
    """

    state: np.ndarray
    setpoint: np.ndarray
    applied: np.ndarray


@dataclass(frozen=True)
class DeviceStream:
    """One simulated device: its delivered rows (column lists, see COLUMNS), what its twin ran on, the real plant."""

    rows: dict[str, list[Any]]
    twin_inputs: TwinInputs
    plant: PlantTrace


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


class DeviceLoop:
    """One device run one sampling period at a time: plant, field controller, attack episodes and (optionally) its
    virtual twin alongside, so that a response decided after a step acts on the next one (`twinids respond`).

    Every random draw is made up front in the order `run_device` always made them, so a loop stepped without a
    response gives the same stream bit for bit. `twin` = (gain, gate) runs the virtual twin alongside (its columns
    in `rows`, its estimate for `Response.use_twin_estimate`); without it the twin's columns are left to
    `follow_twin`.
    """

    def __init__(
        self,
        model: DeviceModel,
        episodes: list[Episode],
        n_steps: int,
        noise_rng: np.random.Generator,
        schedule_rng: np.random.Generator,
        packet_loss: float,
        twin: tuple[float, float] | None = None,
    ) -> None:
        self.model, self.episodes, self.n_steps = model, episodes, n_steps
        setpoint, exogenous = model.schedule(n_steps, schedule_rng)
        disturbance = ornstein_uhlenbeck(n_steps, model.disturbance_std, model.disturbance_steps, noise_rng)
        sensor_shocks = noise_rng.standard_normal((n_steps, 2))
        lost = noise_rng.random(n_steps) < packet_loss
        active = np.full(n_steps + 1, -1)
        for index, episode in enumerate(episodes):
            active[episode.start : episode.start + episode.length] = index
        self._exogenous_steps = np.asarray(exogenous, dtype=np.float64)
        # Python lists index several times faster than numpy arrays in the per-step code.
        self._setpoint, self._exogenous, self._disturbance = setpoint.tolist(), exogenous.tolist(), disturbance.tolist()
        self._shocks, self._lost, self._active = sensor_shocks.tolist(), lost.tolist(), active.tolist()

        self.controller = model.controller(float(setpoint[0]))
        self.command = self.applied = self.controller.command
        self.state = float(setpoint[0])
        self.meter = float(model.advance(self.state, self.applied, exogenous[0], 0.0)[1])
        self.initial_state, self.commands = self.state, [self.command]
        self.delivered = np.zeros(n_steps, dtype=bool)
        self.history: list[Packet] = []
        self.last_delivered: Packet | None = None
        self.pending_gap = NORMAL  # a dropped-by-attack packet labels the next delivered row: its gap is the attack
        self.twin = None if twin is None else VirtualTwin(model, self.state, self.command, exogenous[0], *twin)
        columns = COLUMNS if twin is not None else [c for c in COLUMNS if c not in ("twin_primary", "twin_secondary")]
        self.rows: dict[str, list[Any]] = {column: [] for column in columns}
        self._trace: list[tuple[float, float]] = []
        self.t = 0

    def step(self, response: Response = NO_RESPONSE) -> bool:
        """Run step `t` under `response` and move on; whether a packet was delivered (a row added to `rows`)."""
        t, model = self.t, self.model
        state, command = self.state, self.command
        raw = Packet(
            primary=state + model.sensor_noise * self._shocks[t][0],
            secondary=self.meter + model.meter_noise * self._shocks[t][1],
            actuator=self.applied,
        )
        self.history.append(raw)
        episode = self.episodes[self._active[t]] if self._active[t] >= 0 else None
        packet: Packet | None = raw
        if episode is not None:
            ctx = StepContext(
                model=model,
                setpoint=float(self._setpoint[t]),
                exogenous=float(self._exogenous[t]),
                command=command,
                history=self.history,
                last_delivered=self.last_delivered,
            )
            packet = episode.tamper(t - episode.start, raw, ctx)  # called even when dropped: it keeps its own state
            if response.rate_limit and episode.flood:
                packet = None if self._lost[t] else raw
            elif packet is None:
                self.pending_gap = episode.name
        elif self._lost[t]:
            packet = None
        twin, reading = self.twin, None if packet is None else packet.primary
        if packet is not None:
            attack = episode.name if episode is not None else self.pending_gap
            values = [
                t * model.step_seconds,
                packet.primary,
                packet.secondary,
                command,
                packet.actuator,
                self._setpoint[t],
                self._exogenous[t],
                int(attack != NORMAL),
                attack,
            ]
            if twin is not None:
                values[3:3] = [twin.primary, twin.secondary]
            for column, value in zip(self.rows, values, strict=True):
                self.rows[column].append(value)
            self.last_delivered, self.pending_gap = packet, NORMAL
            self.delivered[t] = True
        if twin is not None:
            if response.use_twin_estimate:
                reading = twin.primary  # the twin's estimate of this step's reading, made before it folds this one in
            twin.observe(packet, command)

        command = self.controller.update(reading, float(self._setpoint[t]))
        self.commands.append(command)
        applied = command
        upcoming = self.episodes[self._active[t + 1]] if self._active[t + 1] >= 0 else None
        if upcoming is not None:
            hijacked = upcoming.actuate(t + 1 - upcoming.start, command, model)  # keeps its state when isolated
            if not response.isolate_commands:
                applied = hijacked
        if twin is not None:
            twin.advance(command, self._exogenous[t])
        self._trace.append((state, applied))
        next_state, next_meter = model.advance(state, applied, self._exogenous[t], self._disturbance[t])
        self.state, self.meter, self.command, self.applied = float(next_state), float(next_meter), command, applied
        self.t = t + 1
        return packet is not None

    def twin_inputs(self) -> TwinInputs:
        """What the device's twin runs on (the commands so far)."""
        return TwinInputs(self.initial_state, np.asarray(self.commands), self._exogenous_steps, self.delivered)

    def plant(self) -> PlantTrace:
        """The real plant over the steps run so far."""
        state, applied = (np.array(column, dtype=np.float64) for column in zip(*self._trace, strict=True))
        return PlantTrace(state, np.asarray(self._setpoint[: self.t], dtype=np.float64), applied)


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
    loop = DeviceLoop(model, episodes, n_steps, noise_rng, schedule_rng, packet_loss)
    for _ in range(n_steps):
        loop.step()
    rows, inputs = loop.rows, loop.twin_inputs()
    packets = np.column_stack([rows["sensor_primary"], rows["sensor_secondary"], rows["actuator_reported"]])
    expected = follow_twin(model, inputs, packets.reshape(-1, 3), twin_gain, twin_gate)
    rows["twin_primary"], rows["twin_secondary"] = expected[:, 0].tolist(), expected[:, 1].tolist()
    return DeviceStream({column: rows[column] for column in COLUMNS}, inputs, loop.plant())
