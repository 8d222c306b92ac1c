"""Attack settings: validate the `attacks` config and place non-overlapping episodes on a device's timeline.

`rate` is the expected number of episodes per 1000 steps per device; `length` the [min, max] episode length
in steps. Episodes start after a warm-up, never overlap, and keep a clean gap between them so that one window
of 20 steps rarely mixes two attacks. Every setting of an injected type is required: the shipped values live
in configs/data/synthetic_twin.yaml only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError, require_integer, require_number
from twinids.twin.attacks import ATTACKS, Episode
from twinids.twin.devices import DeviceModel

COMMON_SETTINGS = ("rate", "length")  # every attack type's settings, beside its own `Episode.settings`
KEY = "data.source.attacks"  # where attack settings live in the composed config
MODES = {"false_data_injection": ("bias", "ramp"), "denial_of_service": ("stale", "missing")}
WARMUP_STEPS = 50  # clean start: controllers settle and replay has something to replay
GAP_STEPS = 20  # clean steps after every episode (the DoS gap row and the plant settle in it)


def _range(where: str, value: Any, integer: bool = False) -> list[float]:
    """A [low, high] pair with 0 <= low <= high (a single number means [x, x])."""
    pair = [value, value] if isinstance(value, int | float) and not isinstance(value, bool) else value
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise TwinIDSError(f"{where} must be a number or a [low, high] pair; got {value!r}") from None
    if not 0 <= low <= high or (integer and (low < 1 or low != int(low) or high != int(high))):
        kind = "whole numbers >= 1" if integer else "numbers >= 0"
        raise TwinIDSError(f"{where} must be [low, high] with low <= high, {kind}; got {value!r}")
    return [int(low), int(high)] if integer else [low, high]


def _check_param(where: str, name: str, key: str, value: Any) -> Any:
    if key == "rate":
        return require_number(value, where, 0)
    if key in ("length",):
        return _range(where, value, integer=True)
    if key == "magnitude":
        return _range(where, value)
    if key == "modes":
        modes = [value] if isinstance(value, str) else list(value)
        bad = [m for m in modes if m not in MODES[name]]
        if not modes or bad:
            raise TwinIDSError(f"{where}: unknown or empty mode(s) {bad or modes}; valid are {list(MODES[name])}")
        return modes
    if key in ("drop_probability", "smoothing"):
        return require_number(value, where, 0, 1)
    if key == "max_lag":
        return require_integer(value, where, 1)
    if key == "forge_feedback" and not isinstance(value, bool):
        raise TwinIDSError(f"{where} must be true or false; got {value!r}")
    return value


def parse_attacks(attacks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per attack type to inject, its validated settings ({} means no attacks). Each type gives every one of
    its settings (`rate`, `length` and the type's own): none is filled in here.

    Raises:
        TwinIDSError: unknown attack type, unknown or missing setting, or a value out of range; the message
            names the key.
    """
    if not isinstance(attacks, Mapping):
        raise TwinIDSError(f"{KEY} must be a mapping of attack type -> settings; got {type(attacks).__name__}")
    parsed: dict[str, dict[str, Any]] = {}
    for name, settings in attacks.items():
        if name not in ATTACKS:
            raise TwinIDSError(f"{KEY}: unknown attack type {name!r}; valid types are {list(ATTACKS)}")
        if not isinstance(settings, Mapping):
            raise TwinIDSError(f"{KEY}.{name} must be a mapping of settings; got {settings!r}")
        valid = (*COMMON_SETTINGS, *ATTACKS[name].settings)
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise TwinIDSError(f"{KEY}.{name}: unknown setting(s) {unknown}; valid are {sorted(valid)}")
        missing = [key for key in valid if key not in settings]
        if missing:
            raise TwinIDSError(
                f"{KEY}.{name}: missing setting(s) {missing}; each attack type sets {list(valid)} "
                "(configs/data/synthetic_twin.yaml shows every one)"
            )
        parsed[name] = {key: _check_param(f"{KEY}.{name}.{key}", name, key, settings[key]) for key in valid}
    return parsed


def _expected(settings: dict[str, Any], n_steps: int) -> float:
    return settings["rate"] * n_steps / 1000.0


def check_fits(attacks: dict[str, dict[str, Any]], n_steps: int) -> None:
    """Refuse an `n_steps` too short for the attacks at their longest, whatever the seed draws."""
    if not attacks:
        return
    longest = max(s["length"][1] for s in attacks.values())
    warmup = max(WARMUP_STEPS, longest)
    need = warmup + sum(math.ceil(_expected(s, n_steps)) * (s["length"][1] + GAP_STEPS) for s in attacks.values())
    if need > n_steps:
        raise TwinIDSError(
            f"data.source.n_steps={n_steps} is too small for the configured attacks: at their longest they need {need} "
            f"steps per device (warm-up {warmup}, each episode plus a {GAP_STEPS}-step gap); raise n_steps, "
            f"or lower {KEY}.<type>.rate / {KEY}.<type>.length, or set {KEY}={{}} for a clean run"
        )


def plan_episodes(
    attacks: dict[str, dict[str, Any]], n_steps: int, rng: np.random.Generator, model: DeviceModel
) -> list[Episode]:
    """Draw the episodes of one device: how many of each type (the expected count, rounded at random),
    their lengths, and their starts spread uniformly over the free time. Sorted by start."""
    drawn: list[tuple[str, int]] = []
    for name, settings in attacks.items():
        expected = _expected(settings, n_steps)
        count = int(expected) + int(rng.random() < expected - int(expected))
        low, high = settings["length"]
        drawn += [(name, int(rng.integers(low, high + 1))) for _ in range(count)]
    if not drawn:
        return []
    order = rng.permutation(len(drawn))
    drawn = [drawn[i] for i in order]
    warmup = max(WARMUP_STEPS, max(s["length"][1] for s in attacks.values()))
    free = n_steps - warmup - sum(length + GAP_STEPS for _, length in drawn)
    cuts = np.sort(rng.integers(0, free + 1, size=len(drawn)))
    gaps = np.diff(np.concatenate([[0], cuts]))
    episodes: list[Episode] = []
    cursor = warmup
    for (name, length), gap in zip(drawn, gaps, strict=True):
        start = cursor + int(gap)
        episodes.append(ATTACKS[name].plan(start, length, attacks[name], rng, model))
        cursor = start + length + GAP_STEPS
    return episodes
