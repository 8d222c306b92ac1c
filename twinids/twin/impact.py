"""Physical impact of a simulated run: what an attack (or a response to a false alarm) did to the real plant.

Detection metrics count windows; an operator counts harm. Two measures per device, both from the real plant's
trace (`PlantTrace`), which the platform never sees:
- minutes out of the safe band: the state further than the device's `safe_band` from its setpoint (a room too
  cold or too hot, a tank that no longer buffers, a belt off its throughput);
- actuator full-load hours: the actuator's effort (a heater's full-load hours times its kW is its energy).
A run's impact is measured against the same plant run without attacks and without responses (the same seed and
replica draw the same weather and noise), so what normal operation already does (a morning warm-up) cancels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from twinids.twin.devices import DeviceModel
from twinids.twin.stream import PlantTrace


@dataclass(frozen=True)
class Impact:
    """Harm summed over devices: minutes out of the safe band and actuator full-load hours."""

    band_minutes: float
    actuator_hours: float

    def __add__(self, other: Impact) -> Impact:
        return Impact(self.band_minutes + other.band_minutes, self.actuator_hours + other.actuator_hours)

    def __sub__(self, other: Impact) -> Impact:
        return Impact(self.band_minutes - other.band_minutes, self.actuator_hours - other.actuator_hours)


def device_impact(plant: PlantTrace, model: DeviceModel) -> Impact:
    """One device's minutes out of its safe band and its actuator's full-load hours over the trace."""
    outside = np.abs(plant.state - plant.setpoint) > model.safe_band
    step_minutes = model.step_seconds / 60.0
    return Impact(float(outside.sum()) * step_minutes, float(plant.applied.sum()) * step_minutes / 60.0)


def network_impact(plants: Mapping[str, PlantTrace], models: Mapping[str, DeviceModel]) -> Impact:
    """The devices' impacts summed (every device counted, attacked or not: a response may harm any)."""
    impacts = [device_impact(plants[name], models[name]) for name in plants]
    return Impact(sum(i.band_minutes for i in impacts), sum(i.actuator_hours for i in impacts))
