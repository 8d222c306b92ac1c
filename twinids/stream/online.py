"""Online detection: each arriving reading joins its device's window, and each full window is decided at once.

`OnlineDetector` keeps, per device, the last `window` encoded readings and the last `smooth` raw scores. A reading
is encoded with the encoder fitted on the run's training rows, so a window scored here holds exactly what the same
window holds in `twinids eval`; the decision is the detector's own `WindowRule`, with the same causal smoothing per
device (`twinids.scoring.normalize.smooth`), so the same readings give the same scores and alarms online as offline.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from twinids.data.frame import DEVICE, TIME


class BadReading(ValueError):
    """A reading the detector cannot take (missing feature, not a number, unknown device, out of order)."""


@dataclass(frozen=True)
class Decision:
    """The detector's decision on the window that a device's latest reading completed.

    `score` is the smoothed score the alarm rule compares with `threshold` (a classifier: 1 - P(normal), and its
    predicted class decides: `threshold` is None); `predicted` names the class a classifier predicts (None for a
    detector that names no class: one-class and residual detectors).
    """

    device: str
    time: float
    score: float
    threshold: float | None
    alarm: bool
    predicted: str | None

    def to_json(self) -> str:
        """One JSON object on one line (what `twinids detect` writes per alert)."""
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)


class OnlineDetector:
    """Per-device windows over a stream of readings, decided by a loaded detector's `WindowRule`.

    Args:
        rule: the detector's window rule (`Streamable.window_rule()`).
        encoder: the encoder fitted on the run's training rows (`WindowedData.encoder`).
        window: readings per window (the run's `data.window`).
        class_names: the run's classes, normal first.
        devices: the devices the run's data holds; readings of any other are refused (None: any device).
    """

    def __init__(
        self, rule: Any, encoder: Any, window: int, class_names: list[str], devices: Iterable[str] | None = None
    ) -> None:
        self.rule, self.encoder, self.window, self.class_names = rule, encoder, window, list(class_names)
        self.columns = (DEVICE, TIME, *encoder.columns)  # the run's view: all of a reading the detector is handed
        self.devices = None if devices is None else frozenset(devices)
        self._rows: dict[str, deque[np.ndarray]] = {}
        self._scores: dict[str, deque[float]] = {}
        self._last_time: dict[str, float] = {}

    def fresh(self) -> OnlineDetector:
        """The same detector with no reading seen yet (a new stream)."""
        return OnlineDetector(self.rule, self.encoder, self.window, self.class_names, self.devices)

    def push_many(self, readings: Sequence[Mapping[str, Any]]) -> list[Decision | BadReading | None]:
        """Take readings in order, each joining its device's window, and score the windows they complete in one call.

        Returns, per reading, the decision on the window it completed, None (its device's window still fills), or
        the BadReading it was: one without device or time, of an unknown device, not after its device's last, or
        with a feature missing, not a number or not finite. A bad reading changes nothing of the stream's state.
        """
        outcomes: list[Decision | BadReading | None] = [None] * len(readings)
        completed: list[tuple[int, str, float, np.ndarray]] = []
        for index, reading in enumerate(readings):
            try:
                device, time = self._take(self.visible(reading))
            except BadReading as bad:
                outcomes[index] = bad
                continue
            rows = self._rows[device]
            if len(rows) == self.window:
                completed.append((index, device, time, np.stack(rows)))
        if completed:
            raw, classes = self.rule.score(np.stack([window for *_, window in completed]))
            for position, (index, device, time, _) in enumerate(completed):
                predicted = None if classes is None else int(classes[position])
                outcomes[index] = self._decide(device, time, float(raw[position]), predicted)
        return outcomes

    def visible(self, reading: Mapping[str, Any]) -> Mapping[str, Any]:
        """The reading cut to device, time and the run's view (`encoder.columns`), before anything else reads it.

        A detector trained on a role's view is never handed another role's columns, whatever the stream carries.
        """
        if not isinstance(reading, Mapping):
            return reading  # refused as a reading without device or time
        return {column: reading[column] for column in self.columns if column in reading}

    def _take(self, reading: Mapping[str, Any]) -> tuple[str, float]:
        """Check and encode a reading and append it to its device's window; its device and time."""
        device, time = self._identify(reading)
        try:
            row = self.encoder.encode_record(reading)
        except KeyError as missing:
            raise BadReading(f"reading of {device} at {time:g} lacks feature {missing}") from None
        except (TypeError, ValueError):
            raise BadReading(f"reading of {device} at {time:g} holds a feature that is not a number") from None
        if not np.isfinite(row).all():
            raise BadReading(f"reading of {device} at {time:g} holds a value that is not finite")
        self._rows.setdefault(device, deque(maxlen=self.window)).append(row)
        self._last_time[device] = time
        return device, time

    def _decide(self, device: str, time: float, raw: float, predicted: int | None) -> Decision:
        """The alarm rule on a window's raw score, smoothed over the device's last `smooth` windows."""
        scores = self._scores.setdefault(device, deque(maxlen=self.rule.smooth))
        scores.append(raw)
        smoothed = math.fsum(scores) / len(scores)
        if self.rule.threshold is None:
            return Decision(device, time, smoothed, None, predicted != 0, self.class_names[int(predicted)])
        return Decision(device, time, smoothed, float(self.rule.threshold), smoothed > self.rule.threshold, None)

    def _identify(self, reading: Mapping[str, Any]) -> tuple[str, float]:
        """The reading's device and time, checked against the devices known and the device's last time."""
        if DEVICE not in reading or TIME not in reading:
            raise BadReading(f"reading without '{DEVICE}' or '{TIME}': {_preview(reading)}")
        device = str(reading[DEVICE])
        try:
            time = float(reading[TIME])
        except (TypeError, ValueError):
            raise BadReading(f"reading of {device} has a time that is not a number: {reading[TIME]!r}") from None
        if not math.isfinite(time):
            raise BadReading(f"reading of {device} has a time that is not finite")
        if self.devices is not None and device not in self.devices:
            raise BadReading(f"reading of unknown device {device!r} (the run's data holds {len(self.devices)} others)")
        if device in self._last_time and time <= self._last_time[device]:
            raise BadReading(f"reading of {device} at {time:g} is not after its last one ({self._last_time[device]:g})")
        return device, time


def _preview(reading: Mapping[str, Any]) -> str:
    text = repr(dict(reading)) if isinstance(reading, Mapping) else repr(reading)
    return text if len(text) <= 120 else text[:117] + "..."
