"""The digital twin network: build the devices, run each with its twin and attacks, return one tidy frame."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from twinids.data.frame import validate_frame
from twinids.errors import TwinIDSError, require_integer, require_number
from twinids.twin.attacks import Episode
from twinids.twin.devices import DEVICE_KINDS, DeviceModel, build_device
from twinids.twin.schedule import check_fits, parse_attacks, plan_episodes
from twinids.twin.stream import DeviceStream, run_device

KEY = "data.source"  # where the simulator's settings live in the composed config (configs/data/synthetic_twin.yaml)
FEATURES = (
    "device_kind",
    "sensor_primary",
    "sensor_secondary",
    "twin_primary",
    "twin_secondary",
    "residual_primary",
    "residual_secondary",
    "actuator_command",
    "actuator_reported",
    "setpoint",
    "exogenous",
    "dt",
)
# What the virtual twin computes from the delivered readings (an attacker who rewrites readings moves these too)
TWIN_COMPUTED = ("twin_primary", "twin_secondary", "residual_primary", "residual_secondary")
# What one delivered packet carries (twinids.twin.attacks.Packet): all an attacker on the link writes
PACKET = ("sensor_primary", "sensor_secondary", "actuator_reported")


def _plain(value: Any) -> Any:
    """OmegaConf containers (from Hydra) as plain dicts/lists; anything else unchanged."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def parse_devices(devices: Mapping[str, Any] | Sequence[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, kind, parameter overrides) per device from either accepted shape:

    - {kind: count}: `count` devices of `kind`, named `<kind>_1`, `<kind>_2`, ...;
    - [kind, ...] or [{kind: ..., name: ..., <parameter>: ...}, ...]: one device per entry.
    """
    devices = _plain(devices)
    entries: list[dict[str, Any]] = []
    if isinstance(devices, Mapping):
        for kind, count in devices.items():
            count = require_integer(count, f"{KEY}.devices.{kind}", 0)
            entries += [{"kind": kind} for _ in range(count)]  # type: ignore[arg-type]
    elif isinstance(devices, Sequence) and not isinstance(devices, str):
        for index, entry in enumerate(devices):
            if isinstance(entry, str):
                entries.append({"kind": entry})
            elif isinstance(entry, Mapping) and "kind" in entry:
                entries.append(dict(entry))
            else:
                raise TwinIDSError(
                    f"{KEY}.devices[{index}] must be a kind name or a mapping with a 'kind' key; "
                    f"got {entry!r}; kinds are {sorted(DEVICE_KINDS)}"
                )
    else:
        raise TwinIDSError(f"{KEY}.devices must be a mapping kind -> count or a list of devices; got {devices!r}")
    parsed: list[tuple[str, str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for entry in entries:
        kind = str(entry.pop("kind"))
        if kind not in DEVICE_KINDS:
            raise TwinIDSError(f"{KEY}.devices: unknown device kind {kind!r}; valid kinds are {sorted(DEVICE_KINDS)}")
        seen[kind] = seen.get(kind, 0) + 1
        name = str(entry.pop("name", f"{kind}_{seen[kind]}"))
        if any(name == other for other, _, _ in parsed):
            raise TwinIDSError(f"{KEY}.devices: duplicate device name {name!r}; give each device its own 'name'")
        parsed.append((name, kind, entry))
    if not parsed:
        raise TwinIDSError(f"{KEY}.devices: no devices configured; add at least one of {sorted(DEVICE_KINDS)}")
    return parsed


def _check_twin_and_link(twin_gain: Any, twin_gate: Any, packet_loss: Any) -> None:
    """Refuse settings of the wrong type or range (booleans too: YAML's `true` is an int to Python)."""
    require_number(twin_gain, f"{KEY}.twin_gain", 0, 1)
    require_number(twin_gate, f"{KEY}.twin_gate", 0, open_low=True)
    require_number(packet_loss, f"{KEY}.packet_loss", 0, 1, open_high=True)


def simulate_network(
    seed: int,
    n_steps: int,
    step_seconds: float,
    devices: Mapping[str, Any] | Sequence[Any],
    attacks: Mapping[str, Any],
    twin_gain: float,
    twin_gate: float,
    packet_loss: float,
    replica: int | None,
) -> pd.DataFrame:
    """Simulate the digital twin network and return its telemetry as a tidy frame (sorted by device, time).

    Every setting is required: the shipped values live in configs/data/synthetic_twin.yaml only.

    Args:
        seed: root seed; each device draws from its own stream keyed by (seed, device name), so adding a
            device leaves the others unchanged.
        n_steps: sampling steps per device (rows per device, less any packets lost).
        step_seconds: sampling period in seconds.
        devices: {kind: count} or a list of kinds / {kind, name, <parameter>: value} mappings.
        attacks: {type: {rate, length, <type settings>}}, every setting of each type given; {} for no attacks.
        twin_gain: share of a plausible reading's residual the virtual twin folds in per step (0 = open loop).
        twin_gate: readings further than this many sensor-noise stds from the twin are not folded in.
        packet_loss: probability that a normal packet is lost (benign gaps in `dt`).
        replica: None, or another run of the same plant: the same devices (constants from `seed`), with the
            weather, noise and attacks drawn anew for this number (`twinids respond` runs a detector on one).

    Raises:
        TwinIDSError: a bad argument, with the key at fault and the valid options.
    """
    frames = []
    streams = simulate_devices(
        seed, n_steps, step_seconds, devices, attacks, twin_gain, twin_gate, packet_loss, replica
    )
    for name, (kind, _, stream) in streams.items():
        frame = pd.DataFrame(stream.rows)
        frame.insert(0, "device", name)
        frame.insert(2, "device_kind", kind)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["residual_primary"] = frame["sensor_primary"] - frame["twin_primary"]
    frame["residual_secondary"] = frame["sensor_secondary"] - frame["twin_secondary"]
    frame["dt"] = frame.groupby("device", sort=False)["time"].diff().fillna(float(step_seconds))
    frame = frame.sort_values(["device", "time"], kind="stable", ignore_index=True)
    ordered = ["device", "time", *FEATURES, "label", "attack"]
    frame = frame[ordered].astype({"label": "int64", "time": "float64"})
    return validate_frame(frame, "synthetic_twin")


@dataclass(frozen=True)
class DevicePlan:
    """One device ready to run: its model, its attack episodes and the random streams of its plant and schedule."""

    name: str
    kind: str
    model: DeviceModel
    episodes: list[Episode]
    noise_rng: np.random.Generator
    schedule_rng: np.random.Generator


def plan_devices(
    seed: int,
    n_steps: int,
    step_seconds: float,
    devices: Mapping[str, Any] | Sequence[Any],
    attacks: Mapping[str, Any],
    replica: int | None,
) -> list[DevicePlan]:
    """Every device built and its episodes placed (the settings as in `simulate_network`), in config order.

    A device's constants come from (seed, name); its weather, noise and attacks from the same pair, or from
    (seed, name, replica) when `replica` is set: another run of the same plant.
    """
    require_integer(seed, f"{KEY}.seed", 0)
    require_integer(n_steps, f"{KEY}.n_steps", 1)
    require_number(step_seconds, f"{KEY}.step_seconds", 0, open_low=True)
    if replica is not None:
        require_integer(replica, f"{KEY}.replica", 0)
    device_specs = parse_devices(devices)
    attack_settings = parse_attacks(_plain(attacks))
    check_fits(attack_settings, int(n_steps))
    plans = []
    for name, kind, overrides in device_specs:
        root = [int(seed), zlib.crc32(name.encode())]
        streams = np.random.SeedSequence(root).spawn(4)
        if replica is not None:
            streams[1:] = np.random.SeedSequence([*root, int(replica)]).spawn(4)[1:]
        params_rng, schedule_rng, noise_rng, attack_rng = (np.random.default_rng(s) for s in streams)
        model = build_device(kind, float(step_seconds), params_rng, overrides, where=f"{KEY}.devices[{name!r}]")
        episodes = plan_episodes(attack_settings, int(n_steps), attack_rng, model)
        plans.append(DevicePlan(name, kind, model, episodes, noise_rng, schedule_rng))
    return plans


def simulate_devices(
    seed: int,
    n_steps: int,
    step_seconds: float,
    devices: Mapping[str, Any] | Sequence[Any],
    attacks: Mapping[str, Any],
    twin_gain: float,
    twin_gate: float,
    packet_loss: float,
    replica: int | None,
) -> dict[str, tuple[str, DeviceModel, DeviceStream]]:
    """Per device name: its kind, its model and its simulated stream (the settings as in `simulate_network`)."""
    _check_twin_and_link(twin_gain, twin_gate, packet_loss)
    simulated = {}
    for plan in plan_devices(seed, n_steps, step_seconds, devices, attacks, replica):
        stream = run_device(
            plan.model,
            plan.episodes,
            int(n_steps),
            plan.noise_rng,
            plan.schedule_rng,
            float(twin_gain),
            float(twin_gate),
            float(packet_loss),
        )
        simulated[plan.name] = (plan.kind, plan.model, stream)
    return simulated
