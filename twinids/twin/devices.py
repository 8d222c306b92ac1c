"""Physical device kinds of the twin network: one small discrete-time plant per kind, and the registry.

Every kind maps one scalar state (the primary quantity) through `advance`, which works on floats and on
numpy arrays alike so the virtual twin can run many anchored copies at once. The physical plant and its
twin call the same `advance`; only the physical one receives the unmeasured disturbance.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from twinids.errors import TwinIDSError
from twinids.twin.controllers import HysteresisController, SpeedController

Controller = HysteresisController | SpeedController


def ornstein_uhlenbeck(n_steps: int, std: float, corr_steps: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) series with the given std and correlation time: slow, bounded wandering."""
    phi = math.exp(-1.0 / corr_steps)
    shocks = rng.standard_normal(n_steps) * std * math.sqrt(1.0 - phi * phi)
    series = np.empty(n_steps)
    value = rng.standard_normal() * std
    for i in range(n_steps):
        value = phi * value + shocks[i]
        series[i] = value
    return series


def _piecewise(n_steps: int, levels: np.ndarray, min_len: int, max_len: int, rng: np.random.Generator) -> np.ndarray:
    """Piecewise-constant series holding a random entry of `levels` for a random number of steps."""
    series = np.empty(n_steps)
    i = 0
    while i < n_steps:
        span = int(rng.integers(min_len, max_len + 1))
        series[i : i + span] = rng.choice(levels)
        i += span
    return series


def _hours(n_steps: int, step_seconds: float) -> np.ndarray:
    return (np.arange(n_steps) * step_seconds / 3600.0) % 24.0


class DeviceModel(ABC):
    """What the network needs from a device kind: schedules, physics, controller, noise levels."""

    kind: ClassVar[str]
    binary_actuator: ClassVar[bool]
    jittered: ClassVar[tuple[str, ...]] = ()
    step_seconds: float
    sensor_noise: float  # std of the primary sensor
    meter_noise: float  # std of the secondary sensor (meter)
    disturbance_std: float  # std of the unmeasured disturbance the twin does not know
    disturbance_steps: float  # its correlation time in steps
    spoof_half_width: float  # readings within setpoint +- this look plausible to an operator
    safe_band: float  # the plant is harmed while its state is further than this from the setpoint (impact)

    @abstractmethod
    def schedule(self, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Setpoint and measured exogenous input per step (both known to the twin)."""

    @abstractmethod
    def advance(self, state: Any, actuator: float, exogenous: float, disturbance: float) -> tuple[Any, Any]:
        """One step of the plant: (next state, secondary quantity over the step)."""

    @abstractmethod
    def controller(self, setpoint: float) -> Controller:
        """A fresh field controller for this device."""


@dataclass
class HeatedRoom(DeviceModel):
    """Room air node heated by an on/off electric heater under a thermostat with a dead band.

    T' = T_inf + (T - T_inf) exp(-dt/tau), T_inf = T_out + R P u + d. Primary: room temperature (°C);
    secondary: heater power meter (kW); exogenous: outdoor temperature (°C); setpoint: day/night schedule.
    """

    kind: ClassVar[str] = "heated_room"
    binary_actuator: ClassVar[bool] = True
    jittered: ClassVar[tuple[str, ...]] = ("tau_s", "heater_kw", "rise_c_per_kw", "outdoor_mean_c")
    step_seconds: float  # data.source.step_seconds: the sampling period sets the physics' time step
    tau_s: float = 1200.0
    heater_kw: float = 2.0
    rise_c_per_kw: float = 8.0
    band_c: float = 0.5
    day_setpoint_c: float = 21.0
    night_setpoint_c: float = 18.0
    outdoor_mean_c: float = 9.0
    outdoor_swing_c: float = 4.0
    sensor_noise: float = 0.1
    meter_noise: float = 0.02
    disturbance_std: float = 0.1
    disturbance_steps: float = 60.0
    spoof_half_width: float = 1.5
    safe_band: float = 1.0  # °C: comfort (the thermostat holds +-0.5)

    def schedule(self, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        hours = _hours(n_steps, self.step_seconds)
        day = (hours >= 7.0) & (hours < 22.0)
        setpoint = np.where(day, self.day_setpoint_c, self.night_setpoint_c)
        outdoor = (
            self.outdoor_mean_c
            + self.outdoor_swing_c * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
            + ornstein_uhlenbeck(n_steps, 1.0, 240.0, rng)
        )
        return setpoint, outdoor

    def advance(self, state: Any, actuator: float, exogenous: float, disturbance: float) -> tuple[Any, Any]:
        power = self.heater_kw * actuator
        settled = exogenous + self.rise_c_per_kw * power + disturbance
        decay = math.exp(-self.step_seconds / self.tau_s)
        return settled + (state - settled) * decay, power + 0.0 * state

    def controller(self, setpoint: float) -> Controller:
        return HysteresisController(band=self.band_c)


@dataclass
class WaterTank(DeviceModel):
    """Buffer tank filled by an on/off pump under level control, drained through a demand valve.

    V dL/dt = Q u + d - k v L (L in % of height, V litres per %), stepped exactly over dt and clipped to
    [0, 100]. Primary: level (%); secondary: pump flow meter (L/s); exogenous: outlet valve opening (0-1).
    """

    kind: ClassVar[str] = "water_tank"
    binary_actuator: ClassVar[bool] = True
    jittered: ClassVar[tuple[str, ...]] = ("litres_per_pct", "pump_lps", "outflow_lps_per_pct")
    step_seconds: float  # data.source.step_seconds: the sampling period sets the physics' time step
    litres_per_pct: float = 10.0
    pump_lps: float = 1.0
    outflow_lps_per_pct: float = 0.016
    band_pct: float = 5.0
    setpoints_pct: tuple[float, ...] = (40.0, 50.0, 60.0)
    sensor_noise: float = 0.4
    meter_noise: float = 0.02
    disturbance_std: float = 0.004
    disturbance_steps: float = 30.0
    spoof_half_width: float = 12.0
    safe_band: float = 8.0  # % of height: the buffer the process downstream needs (level control holds +-5)

    def schedule(self, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        setpoint = _piecewise(n_steps, np.array(self.setpoints_pct), 300, 900, rng)
        hours = _hours(n_steps, self.step_seconds)
        demand = 0.55 + 0.2 * np.sin(2 * np.pi * (hours - 8.0) / 24.0) + ornstein_uhlenbeck(n_steps, 0.12, 20.0, rng)
        return setpoint, np.clip(demand, 0.2, 1.0)

    def advance(self, state: Any, actuator: float, exogenous: float, disturbance: float) -> tuple[Any, Any]:
        inflow = self.pump_lps * actuator
        drain = self.outflow_lps_per_pct * exogenous
        settled = (inflow + disturbance) / drain
        decay = math.exp(-self.step_seconds * drain / self.litres_per_pct)
        level = min(max(settled + (state - settled) * decay, 0.0), 100.0)  # builtins: scalar np.clip is slow
        return level, inflow + 0.0 * state

    def controller(self, setpoint: float) -> Controller:
        return HysteresisController(band=self.band_pct)


@dataclass
class Conveyor(DeviceModel):
    """Belt conveyor on a variable-speed drive with a PI speed trim loop; belt load droops the speed.

    S' = S_ss + (S - S_ss) exp(-dt/tau), S_ss = g u - c (m + d), I = I0 + a (m + d) + b S. Primary: belt speed
    (% of rated); secondary: motor current (A); exogenous: belt load from the weigher (kg).
    """

    kind: ClassVar[str] = "conveyor"
    binary_actuator: ClassVar[bool] = False
    jittered: ClassVar[tuple[str, ...]] = ("tau_s", "speed_per_unit", "droop_pct_per_kg", "current_per_kg")
    step_seconds: float  # data.source.step_seconds: the sampling period sets the physics' time step
    tau_s: float = 40.0
    speed_per_unit: float = 110.0
    droop_pct_per_kg: float = 0.02
    idle_current_a: float = 1.5
    current_per_kg: float = 0.015
    current_per_pct: float = 0.05
    kp: float = 0.002
    ki: float = 0.003
    setpoints_pct: tuple[float, ...] = (60.0, 75.0, 90.0)
    sensor_noise: float = 0.4
    meter_noise: float = 0.1
    disturbance_std: float = 15.0
    disturbance_steps: float = 10.0
    spoof_half_width: float = 6.0
    safe_band: float = 5.0  # % of rated speed: the line's throughput tolerance (the trim loop holds about +-1)

    def schedule(self, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        setpoint = _piecewise(n_steps, np.array(self.setpoints_pct), 150, 500, rng)
        load = _piecewise(n_steps, np.linspace(50.0, 450.0, 9), 5, 40, rng)
        return setpoint, load

    def advance(self, state: Any, actuator: float, exogenous: float, disturbance: float) -> tuple[Any, Any]:
        load = exogenous + disturbance
        settled = np.maximum(self.speed_per_unit * actuator - self.droop_pct_per_kg * load, 0.0)
        speed = settled + (state - settled) * math.exp(-self.step_seconds / self.tau_s)
        current = self.idle_current_a + self.current_per_kg * load + self.current_per_pct * (state + speed) / 2
        return speed, current

    def controller(self, setpoint: float) -> Controller:
        drive = SpeedController(kp=self.kp, ki=self.ki, full_scale=self.speed_per_unit)
        drive.command = setpoint / self.speed_per_unit
        return drive


DEVICE_KINDS: dict[str, type[DeviceModel]] = {model.kind: model for model in (HeatedRoom, WaterTank, Conveyor)}


def build_device(
    kind: str,
    step_seconds: float,
    rng: np.random.Generator,
    overrides: dict[str, Any],
    where: str,
) -> DeviceModel:
    """A device of `kind` with its physical constants jittered +-10% (no two rooms alike), then overridden.

    Raises:
        TwinIDSError: unknown kind or unknown parameter name, naming the valid options.
    """
    if kind not in DEVICE_KINDS:
        raise TwinIDSError(f"{where}: unknown device kind {kind!r}; valid kinds are {sorted(DEVICE_KINDS)}")
    model_cls = DEVICE_KINDS[kind]
    model: DeviceModel = model_cls(step_seconds=step_seconds)  # type: ignore[call-arg]
    jitter = {name: getattr(model, name) * float(rng.uniform(0.9, 1.1)) for name in model_cls.jittered}
    model = replace(model, **jitter)  # type: ignore[type-var]
    overrides = dict(overrides)
    valid = sorted(f.name for f in fields(model) if f.name != "step_seconds")  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TwinIDSError(f"{where}: unknown parameter(s) {unknown} for kind {kind!r}; valid are {valid}")
    return replace(model, **overrides)  # type: ignore[type-var]
