"""The virtual twin of one device: its own model run from the command stream, kept in step with the plant.

The twin knows the commands, setpoints and measured inputs but not the plant's disturbances or noise. It
folds in a small share of each plausible reading so it does not drift, and refuses readings that jump
beyond a gate, because a forged reading must not pull the twin along with it.
"""

from __future__ import annotations

from twinids.twin.attacks import Packet
from twinids.twin.devices import DeviceModel


class VirtualTwin:
    """Expected primary and secondary readings of one device, one step at a time.

    Each step the twin compares the delivered reading with its expectation. Within `gate` sensor-noise
    stds it folds in `gain` of the difference (gain 0 is a pure open-loop twin). Beyond the gate it keeps
    its own state, with one exception: if during the current spell of refused readings the meter showed
    an actuator effect other than the commanded one while the device reported the commanded state (a
    hijacked actuator with forged feedback), the plant really moved, so once the meter agrees again the
    twin resynchronises to the reading instead of staying out of step for ever.
    """

    def __init__(
        self, model: DeviceModel, state: float, command: float, exogenous: float, gain: float, gate: float
    ) -> None:
        self.model = model
        self.gain = gain
        self.gate = gate * model.sensor_noise
        self.meter_gate = gate * model.meter_noise
        self.primary = float(state)
        self.secondary = float(model.advance(state, command, exogenous, 0.0)[1])
        self.actuator_hijacked = False

    def observe(self, packet: Packet | None, command: float) -> None:
        """Assimilate the delivered packet (None if none arrived); `command` was in force while it was made."""
        if packet is None:
            return
        residual = packet.primary - self.primary
        meter_off = abs(packet.secondary - self.secondary) > self.meter_gate
        if abs(residual) <= self.gate:
            self.primary += self.gain * residual
            self.actuator_hijacked = False
        elif meter_off:
            self.actuator_hijacked |= abs(packet.actuator - command) < 1e-9
        elif self.actuator_hijacked:
            self.primary = packet.primary
            self.actuator_hijacked = False

    def advance(self, command: float, exogenous: float) -> None:
        """Step the twin's model one interval under the controller's command, without noise or disturbance."""
        state, meter = self.model.advance(self.primary, command, exogenous, 0.0)
        self.primary, self.secondary = float(state), float(meter)
