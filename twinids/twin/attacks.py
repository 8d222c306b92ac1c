"""Attack episodes: one class per attack type, each tampering with packets or the actuator, and the registry.

An episode covers rows `start .. start + length - 1` of one device. `tamper` rewrites (or drops) the telemetry
packet of a row; `actuate` rewrites the actuator value applied during the interval that ends at a row.
`plan` draws everything random about an episode up front, so the noise of the plant never depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from twinids.twin.devices import DeviceModel


@dataclass(frozen=True)
class Packet:
    """One telemetry message of a device: primary sensor, secondary sensor (meter), reported actuator."""

    primary: float
    secondary: float
    actuator: float


@dataclass
class StepContext:
    """What an attacker can observe at a step: the device, current setpoint/input, and past traffic."""

    model: DeviceModel
    setpoint: float
    exogenous: float
    command: float  # the controller's command in force over the interval ending now
    history: list[Packet]  # raw (untampered) packets, indexed by step, including this one
    last_delivered: Packet | None  # last packet the platform received before this step


@dataclass
class Episode:
    """Base episode: tampers with nothing. Subclasses override `tamper` and/or `actuate`."""

    name: ClassVar[str] = "normal"
    settings: ClassVar[tuple[str, ...]] = ()  # the type's own config keys, beside rate and length
    flood: ClassVar[bool] = False  # it floods the link: rate-limiting the device's link drops it (twin.response)
    start: int
    length: int

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        """An episode at `start` of `length` steps with its random parameters drawn from `rng`."""
        return cls(start=start, length=length)

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        """The packet delivered at row `start + offset`, or None if it never arrives."""
        return raw

    def actuate(self, offset: int, command: float, model: DeviceModel) -> float:
        """The actuator value really applied over the interval ending at row `start + offset`."""
        return command


def _uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


@dataclass
class FalseDataInjection(Episode):
    """Adds a bias (constant) or a ramp (growing linearly to the full offset) to the primary sensor.

    `magnitude` is in multiples of the device's primary sensor noise std, so a bias of 4-10 sigma is
    0.4-1.0 °C in a room or 1.6-4 % of height in a tank: within normal ranges, seen only against the twin.
    """

    name: ClassVar[str] = "false_data_injection"
    settings: ClassVar[tuple[str, ...]] = ("modes", "magnitude")
    mode: str
    offset: float

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        mode = str(rng.choice(params["modes"]))
        offset = _sign(rng) * _uniform(rng, params["magnitude"]) * model.sensor_noise
        return cls(start=start, length=length, mode=mode, offset=offset)

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        share = (offset + 1) / self.length if self.mode == "ramp" else 1.0
        return replace(raw, primary=raw.primary + share * self.offset)


@dataclass
class Replay(Episode):
    """Re-sends the device's own recorded packets from `lag` steps earlier (whole packets, fresh timestamps)."""

    name: ClassVar[str] = "replay"
    settings: ClassVar[tuple[str, ...]] = ("max_lag",)
    lag: int

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        upper = max(length, min(start, int(params["max_lag"])))
        return cls(start=start, length=length, lag=int(rng.integers(length, upper + 1)))

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        return ctx.history[self.start + offset - self.lag]


@dataclass
class DenialOfService(Episode):
    """Floods the link: either the gateway keeps serving the last packet (stale) or packets are lost (missing)."""

    name: ClassVar[str] = "denial_of_service"
    flood: ClassVar[bool] = True
    settings: ClassVar[tuple[str, ...]] = ("modes", "drop_probability")
    mode: str
    dropped: np.ndarray
    frozen: Packet | None = None  # the stale packet, set at the episode's first step

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        mode = str(rng.choice(params["modes"]))
        dropped = rng.random(length) < float(params["drop_probability"])
        return cls(start=start, length=length, mode=mode, dropped=dropped)

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        if self.mode == "missing":
            return None if self.dropped[offset] else raw
        if offset == 0:
            self.frozen = ctx.last_delivered or raw
        return self.frozen


@dataclass
class Spoofing(Episode):
    """Impersonates the device with made-up packets: a smooth random reading within the plausible band
    around the setpoint, a random-but-plausible actuator state, and the meter value that state would give."""

    name: ClassVar[str] = "spoofing"
    settings: ClassVar[tuple[str, ...]] = ("smoothing",)
    unit: np.ndarray
    switches: np.ndarray
    meter_shocks: np.ndarray
    actuator: float = 0.0  # the spoofed actuator state, set at the episode's first step

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        phi = float(params["smoothing"])
        unit = np.empty(length)
        value = rng.uniform(-1.0, 1.0)
        for i in range(length):
            value = phi * value + (1.0 - phi) * rng.uniform(-1.0, 1.0)
            unit[i] = value
        return cls(
            start=start,
            length=length,
            unit=np.clip(unit, -1.0, 1.0),
            switches=rng.random(length),
            meter_shocks=rng.standard_normal(length),
        )

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        model = ctx.model
        if offset == 0:
            self.actuator = (ctx.last_delivered or raw).actuator
        if model.binary_actuator:
            if self.switches[offset] < 0.2:
                self.actuator = 1.0 - self.actuator
        else:
            self.actuator = float(np.clip(self.actuator + 0.02 * (self.switches[offset] - 0.5), 0.0, 1.0))
        primary = ctx.setpoint + model.spoof_half_width * float(self.unit[offset])
        _, meter = model.advance(primary, self.actuator, ctx.exogenous, 0.0)
        secondary = float(meter) + model.meter_noise * float(self.meter_shocks[offset])
        return Packet(primary=primary, secondary=secondary, actuator=self.actuator)


@dataclass
class CommandInjection(Episode):
    """Drives the actuator against the controller: on/off actuators are held opposite to the command at
    the onset, continuous ones are shifted by `magnitude` (fraction of full scale). The physical state
    really diverges from the twin; with `forge_feedback` the device reports the legitimate command."""

    name: ClassVar[str] = "command_injection"
    settings: ClassVar[tuple[str, ...]] = ("magnitude", "forge_feedback")
    shift: float
    forge_feedback: bool
    forced: float | None = None  # the held on/off actuator value, set at the episode's first step

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        shift = _sign(rng) * _uniform(rng, params["magnitude"])
        return cls(start=start, length=length, shift=shift, forge_feedback=bool(params["forge_feedback"]))

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        return replace(raw, actuator=ctx.command) if self.forge_feedback else raw

    def actuate(self, offset: int, command: float, model: DeviceModel) -> float:
        if model.binary_actuator:
            if offset == 0:
                self.forced = 1.0 - command
            return float(self.forced)  # type: ignore[arg-type]
        return float(np.clip(command + self.shift, 0.0, 1.0))


@dataclass
class StealthyInjection(Episode):
    """An attacker who knows the twin's model: it reports the readings the device's own physics predicts from the
    commands it sees, plus a slow ramp (Liu, Ning, Reiter 2009, for a twin instead of a state estimator).

    From the last delivered reading on, the attacker runs the device model under the controller's commands
    (no disturbance) and sends that state as the primary reading with sensor-like noise, shifted by a ramp
    growing linearly to `offset` (in sensor-noise stds, `magnitude`) over the episode; the meter reads what the
    model gives for the commanded actuator, and the reported actuator is the command. The virtual twin runs the
    same model on the same commands, so its residual sees only the ramp and noise, while the controller, acting
    on the forged readings, drives the real plant away.
    """

    name: ClassVar[str] = "stealthy_injection"
    settings: ClassVar[tuple[str, ...]] = ("magnitude",)
    offset: float
    shocks: np.ndarray  # (length, 2) standard-normal noise of the forged primary and meter readings
    state: float = 0.0  # the attacker's simulated plant state

    @classmethod
    def plan(
        cls, start: int, length: int, params: dict[str, Any], rng: np.random.Generator, model: DeviceModel
    ) -> Episode:
        offset = _sign(rng) * _uniform(rng, params["magnitude"]) * model.sensor_noise
        return cls(start=start, length=length, offset=offset, shocks=rng.standard_normal((length, 2)))

    def tamper(self, offset: int, raw: Packet, ctx: StepContext) -> Packet | None:
        model = ctx.model
        if offset == 0:
            self.state = (ctx.last_delivered or raw).primary
        self.state, meter = (float(value) for value in model.advance(self.state, ctx.command, ctx.exogenous, 0.0))
        ramp = (offset + 1) / self.length * self.offset
        return Packet(
            primary=self.state + ramp + model.sensor_noise * float(self.shocks[offset, 0]),
            secondary=meter + model.meter_noise * float(self.shocks[offset, 1]),
            actuator=ctx.command,
        )


ATTACKS: dict[str, type[Episode]] = {
    cls.name: cls
    for cls in (FalseDataInjection, Replay, DenialOfService, Spoofing, CommandInjection, StealthyInjection)
}
