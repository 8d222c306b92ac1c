"""What the platform can do about one device while the simulator runs: the physical side of a response playbook.

A playbook (`twinids.response`) decides, after each step, which of these hold for each device during the next one;
the device loop (`twinids.twin.stream.DeviceLoop`) carries them out. Raising an operator ticket changes nothing in
the plant, so it is the playbook's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Response:
    """The actions in force on one device for one step.

    Attributes:
        isolate_commands: the device's command channel accepts only the controller's authenticated session, so
            injected commands never reach the actuator.
        use_twin_estimate: the device's readings are distrusted: the controller acts on the virtual twin's estimate
            of each reading (also when none arrives). The twin goes on as ever: its gate already refuses readings
            far from what it expects, and it must stay in step with the plant for when the action ends.
        rate_limit: the device's link is rate-limited at the edge, so a flood (denial of service) is dropped there
            and the device's own packets get through.
    """

    isolate_commands: bool = False
    use_twin_estimate: bool = False
    rate_limit: bool = False

    @classmethod
    def of(cls, actions: frozenset[str] | set[str]) -> Response:
        """The response that carries out the physical ones of `actions` (names of this class's fields)."""
        return cls(**{name: name in actions for name in PLANT_ACTIONS})


NO_RESPONSE = Response()
PLANT_ACTIONS = tuple(field.name for field in fields(Response))  # actions the simulated plant carries out
