"""Field controllers of the simulated devices: on/off hysteresis and a PI speed loop.

A controller only ever sees the reading that reached it over the network, so tampered or missing readings
steer the real plant; when no reading arrives it holds its last command, as a PLC does on a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HysteresisController:
    """On/off control with a dead band: switch on below `setpoint - band`, off above `setpoint + band`.

    Used for the thermostat of a heated room and the pump of a water tank; `on_when_low` says whether the
    actuator raises the measured quantity (heater, pump) so it turns on when the reading is low.
    """

    band: float
    command: float = 0.0
    on_when_low: bool = True

    def update(self, reading: float | None, setpoint: float) -> float:
        """The actuator command (0.0 or 1.0) for this step given the delivered reading, or the held one."""
        if reading is None:
            return self.command
        if reading < setpoint - self.band:
            self.command = 1.0 if self.on_when_low else 0.0
        elif reading > setpoint + self.band:
            self.command = 0.0 if self.on_when_low else 1.0
        return self.command


@dataclass
class SpeedController:
    """PI speed trim around a feed-forward, with limited authority and anti-windup; output in [0, 1].

    Feed-forward `setpoint / full_scale` puts the drive near the right speed at once; the PI term removes
    the droop caused by belt load but may move the reference by at most `authority`, as drive trim loops
    are limited so that a bad speed signal cannot run the belt away.
    """

    kp: float
    ki: float
    full_scale: float
    authority: float = 0.25
    integral: float = 0.0
    command: float = field(default=0.0)

    def update(self, reading: float | None, setpoint: float) -> float:
        """The drive reference for this step given the delivered speed reading, or the held one."""
        if reading is None:
            return self.command
        error = setpoint - reading
        feed_forward = setpoint / self.full_scale
        trim = self.kp * error + self.integral + self.ki * error
        bounded = min(self.authority, max(-self.authority, trim))
        self.command = min(1.0, max(0.0, feed_forward + bounded))
        if bounded == trim and 0.0 < self.command < 1.0:
            # Integrate only while nothing saturates, so a long saturation does not wind the loop up.
            self.integral += self.ki * error
        return self.command
