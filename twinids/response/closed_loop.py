"""The simulator run in closed loop: every step, each device's delivered reading goes to the detector, the playbook
acts on its alerts, and the actions change what the devices do from the next step on.

The virtual twin runs alongside each device (so the controller can act on its estimate) and the readings handed to
the detector hold exactly what the offline frame of the same simulation holds (`simulate_network`): with no action
taken, a closed-loop run decides every window as `twinids detect` and `twinids eval` decide it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twinids.data.frame import DEVICE, TIME
from twinids.response.playbook import PlaybookRunner
from twinids.stream.online import Decision, OnlineDetector
from twinids.twin.devices import DeviceModel
from twinids.twin.network import DevicePlan, plan_devices
from twinids.twin.response import NO_RESPONSE
from twinids.twin.stream import DeviceLoop, PlantTrace

READ = ("sensor_primary", "sensor_secondary", "actuator_command", "actuator_reported", "setpoint", "exogenous")


@dataclass(frozen=True)
class LoopOutcome:
    """A closed-loop run: the real plant per device, and what the detector decided on the delivered readings.

    Attributes:
        plants: per device, its real plant over the run.
        models: per device, its model (its safe band, its step).
        decisions: per decided window, in the order decided: (label of its last row, the detector's decision).
        episodes: the attack episodes injected, over all devices.
    """

    plants: dict[str, PlantTrace]
    models: dict[str, DeviceModel]
    decisions: list[tuple[int, Decision]]
    episodes: int


def run_closed_loop(
    source: Mapping[str, Any], online: OnlineDetector | None = None, runner: PlaybookRunner | None = None
) -> LoopOutcome:
    """Run the simulator `source` (the settings of `simulate_network`) step by step, with a detector and a playbook
    if given; without a runner the detector only watches."""
    settings = {key: value for key, value in source.items() if key != "_target_"}
    step_seconds, n_steps = float(settings["step_seconds"]), int(settings["n_steps"])
    plans = plan_devices(
        settings["seed"], n_steps, step_seconds, settings["devices"], settings["attacks"], settings["replica"]
    )
    twin = (float(settings["twin_gain"]), float(settings["twin_gate"]))
    loops = {
        plan.name: DeviceLoop(
            plan.model, plan.episodes, n_steps, plan.noise_rng, plan.schedule_rng, float(settings["packet_loss"]), twin
        )
        for plan in plans
    }
    last_time: dict[str, float] = {}
    decisions: list[tuple[int, Decision]] = []
    for t in range(n_steps):
        now = t * step_seconds
        readings, labels = [], []
        for plan in plans:
            loop = loops[plan.name]
            response = NO_RESPONSE if runner is None else runner.response(plan.name, now, step_seconds)
            if loop.step(response) and online is not None:
                readings.append(_reading(plan, loop, last_time, step_seconds))
                labels.append(int(loop.rows["label"][-1]))
        if not readings:
            continue
        for label, outcome in zip(labels, online.push_many(readings), strict=True):  # type: ignore[union-attr]
            if isinstance(outcome, Decision):
                decisions.append((label, outcome))
                if runner is not None:
                    runner.observe(outcome)
    return LoopOutcome(
        {name: loop.plant() for name, loop in loops.items()},
        {plan.name: plan.model for plan in plans},
        decisions,
        sum(len(plan.episodes) for plan in plans),
    )


def _reading(plan: DevicePlan, loop: DeviceLoop, last_time: dict[str, float], step_seconds: float) -> dict[str, Any]:
    """The row a device just delivered, as the detector reads it: the offline frame's columns, computed alike."""
    rows = loop.rows
    time = rows["time"][-1]
    reading: dict[str, Any] = {DEVICE: plan.name, TIME: time, "device_kind": plan.kind}
    reading.update((column, rows[column][-1]) for column in READ)
    reading["twin_primary"], reading["twin_secondary"] = rows["twin_primary"][-1], rows["twin_secondary"][-1]
    reading["residual_primary"] = reading["sensor_primary"] - reading["twin_primary"]
    reading["residual_secondary"] = reading["sensor_secondary"] - reading["twin_secondary"]
    reading["dt"] = time - last_time[plan.name] if plan.name in last_time else step_seconds
    last_time[plan.name] = time
    return reading
