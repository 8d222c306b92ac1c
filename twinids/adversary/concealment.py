"""Concealment attacks: rewrite the controlled readings of every recorded attack so the detector stays quiet.

Each method is built from `configs/method/<method>.yaml` and returns new rows for the data; the attack job
(`twinids.adversary.attack_job`) checks that only what the threat allows changed, then re-tests the detector.

- `ReplayConcealment`: recorded normal readings of the same phase of the day (needs nothing of the detector).
- `IterativeConcealment`: white-box gradient steps on the detector's smoothed alarm score.
- `LearnedConcealment`: black-box, a model of normal operation trained on normal readings writes them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from twinids.adversary.threat import ConcealmentSettings, Threat
from twinids.errors import TwinIDSError, require_integer, require_number

SCORE_BATCH = 1024  # windows scored at once when nothing needs a gradient


class Concealment(Protocol):
    """One concealment method."""

    def conceal(self, data: Any, threat: Threat, settings: ConcealmentSettings, detector: Any, name: str) -> np.ndarray:
        """New rows for `data`: the threat's entries rewritten, everything else as it was."""
        ...


class ReplayConcealment:
    """Substitute recorded normal readings of the same phase of the day for the controlled channels.

    For each recorded attack (a run of consecutive attacked rows) the recording starts at a normal training row
    of the same device and phase (time modulo `period`) whose whole stretch is normal and evenly spaced; among
    those, the one whose previous reading is nearest to the real reading just before the attack.

    Args:
        phase_tolerance: how far (in the data's time unit) the recording's time of day may lie from the attack's.
    """

    def __init__(self, phase_tolerance: float) -> None:
        self.phase_tolerance = require_number(phase_tolerance, "method.phase_tolerance", 0)

    def conceal(self, data: Any, threat: Threat, settings: ConcealmentSettings, detector: Any, name: str) -> np.ndarray:
        """Rows with each attack's controlled readings replaced by a recorded normal stretch."""
        rows, times, columns = data.rows.copy(), _times(data), threat.controlled
        normal = np.zeros(len(rows), dtype=bool)
        normal[threat.normal_rows] = True
        step = np.median(np.diff(times[threat.normal_rows]))  # the normal spacing (an attack's may have gaps)
        linked = normal[:-1] & normal[1:] & np.isclose(np.diff(times), step)  # row r and r+1 follow each other
        links_before = np.concatenate(([0], np.cumsum(linked)))
        for episode in threat.episodes():
            first, length = int(episode[0]), len(episode)
            starts = np.arange(1, len(rows) - length + 1)  # the stretch s..s+length-1 and the reading s-1 before it
            whole = links_before[starts + length - 1] - links_before[starts - 1] == length
            shift = np.mod(times[starts] - times[first], settings.period)
            in_phase = np.minimum(shift, settings.period - shift) <= self.phase_tolerance + 1e-9 * settings.period
            same_device = True if data.row_devices is None else data.row_devices[starts] == data.row_devices[first]
            candidates = starts[whole & in_phase & same_device]
            if len(candidates) == 0:
                raise TwinIDSError(
                    f"replay found no stretch of {length} normal training readings of the device and phase of the "
                    f"attack at row {first} (period {settings.period:g}, method.phase_tolerance "
                    f"{self.phase_tolerance:g}); check `period` against the data's time unit, or allow more tolerance"
                )
            before = rows[first - 1, columns] if first > 0 else rows[first, columns]
            chosen = candidates[np.argmin(np.square(rows[candidates - 1][:, columns] - before).sum(axis=1))]
            rows[np.ix_(episode, columns)] = threat.project(rows[chosen : chosen + length][:, columns], episode)
        return rows


class IterativeConcealment:
    """White-box: Adam steps on the controlled readings against the detector's smoothed alarm score.

    The loss is the sum, over every test window whose smoothed score the rewritten readings can change, of
    log(1 + h / s), h how far that score is above `threshold - margin` and s the threshold's scale (so a window far
    above does not outweigh many near it); after each step the readings are projected back into their ranges. A
    phase stops when no such window is above the threshold, or after `steps` steps: first with discrete channels
    relaxed to continuous values, then with them snapped to their levels and held.

    Where a twin computes columns from the readings (`threat.link`), they are recomputed exactly after every step
    and scored as recomputed; their gradient is the readings' own, with the twin's expectation held (see
    `twinids.twin.link.SimulatedLink.follow`).

    Args:
        steps: gradient steps at most, per phase.
        lr: Adam's step size, in scaled units.
        margin: how far below the threshold to aim, as a share of it (of one logit for a classifier's 0).
    """

    def __init__(self, steps: int, lr: float, margin: float) -> None:
        self.steps = require_integer(steps, "method.steps", 1)
        self.lr = require_number(lr, "method.lr", 0, open_low=True)
        self.margin = require_number(margin, "method.margin", 0)
        self.steps_taken = 0

    def conceal(self, data: Any, threat: Threat, settings: ConcealmentSettings, detector: Any, name: str) -> np.ndarray:
        """Rows with the attacked readings of the controlled channels descended against the detector's alarm."""
        import torch

        from twinids.scoring.normalize import smooth_differentiable
        from twinids.training.detector import require_concealable

        alarm = require_concealable(detector, name).alarm_score()
        starts, groups, window, link = data.starts["test"], data.groups["test"], data.window, threat.link
        original = torch.from_numpy(np.ascontiguousarray(data.rows))
        reading = starts[:, None] + np.arange(window)
        moved = threat.rows if link is None else np.flatnonzero(link.downstream(threat.rows))
        touched = np.isin(reading, moved).any(axis=1)  # windows that read a row the rewrite can change
        affected = _smoothed_reach(touched, groups, alarm.smooth)
        with torch.no_grad():
            batches = [reading[first : first + SCORE_BATCH] for first in range(0, len(reading), SCORE_BATCH)]
            base = torch.cat([alarm.score(original[torch.from_numpy(batch)]) for batch in batches])
        scale = max(abs(alarm.threshold), 1.0)
        target = alarm.threshold - self.margin * scale
        row_index, column_index = torch.from_numpy(threat.rows[:, None]), torch.from_numpy(threat.controlled[None, :])
        start_values = original[row_index, column_index]
        lower, upper = (torch.from_numpy(limit).to(start_values.dtype) for limit in threat.bounds())
        discrete = torch.tensor([int(c) in threat.levels for c in threat.controlled])
        values = start_values.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([values], lr=self.lr)
        touched_index = torch.from_numpy(np.flatnonzero(touched))
        touched_reading = torch.from_numpy(reading[touched])
        affected_index = torch.from_numpy(np.flatnonzero(affected))
        self.steps_taken = 0
        # Two phases: every channel relaxed to a continuous value first; then the discrete ones are snapped to their
        # values and held there while the continuous ones go on (a snapped status can tip a window back).
        for snapped in (False, True):
            if snapped:
                if not bool(discrete.any()):
                    break
                with torch.no_grad():
                    values.copy_(torch.from_numpy(threat.project(values.detach().numpy())))
                held = values.detach()[:, discrete].clone()
            for _ in range(self.steps):
                rows = _rewritten(original, (row_index, column_index), values, link)
                scores = base.index_put((touched_index,), alarm.score(rows[touched_reading]))
                smoothed = smooth_differentiable(scores, groups, alarm.smooth)[affected_index]
                if bool((smoothed <= alarm.threshold).all()):
                    break
                loss = torch.log1p(torch.relu(smoothed - target) / scale).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self.steps_taken += 1
                with torch.no_grad():
                    values.copy_(torch.maximum(torch.minimum(values, upper), lower))
                    if snapped:
                        values[:, discrete] = held
        rewritten = data.rows.copy()
        rewritten[np.ix_(threat.rows, threat.controlled)] = threat.project(values.detach().numpy())
        return rewritten


def _rewritten(original: Any, entries: tuple[Any, Any], values: Any, link: Any) -> Any:
    """Torch rows with `values` written at `entries`; a link's derived columns recomputed and following them."""
    import torch

    if link is None:
        return original.index_put(entries, values)
    with torch.no_grad():
        current = original.index_put(entries, values.detach()).numpy()
    return link.follow(torch.from_numpy(link.recompute(current)).index_put(entries, values))


class LearnedConcealment:
    """Black-box: a regression model of normal operation writes the controlled readings, one time step after another.

    Trained on consecutive pairs of normal training rows: from the uncontrolled readings at t, the controlled
    readings at t-1 and the phase of the day at t, it predicts the controlled readings at t (columns a twin computes
    from the readings are not among its inputs: the detector's side computes them). During an attack it is
    fed the real uncontrolled readings and its own previous output, so the written stretch follows normal dynamics
    and agrees with the channels the attacker does not control. It never reads the detector.

    Args:
        hidden: hidden layer sizes of scikit-learn's MLPRegressor.
        max_iter: training epochs at most (early stopping on a held-out tenth of the pairs).
    """

    def __init__(self, hidden: Sequence[int], max_iter: int) -> None:
        self.hidden = tuple(require_integer(size, "method.hidden", 1) for size in hidden)
        self.max_iter = require_integer(max_iter, "method.max_iter", 1)

    def conceal(self, data: Any, threat: Threat, settings: ConcealmentSettings, detector: Any, name: str) -> np.ndarray:
        """Rows whose attacked controlled readings the normal-operation model wrote."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        rows, times, controlled = data.rows.copy(), _times(data), threat.controlled
        uncontrolled = np.setdiff1d(np.arange(rows.shape[1]), np.union1d(controlled, threat.derived))
        normal = np.zeros(len(rows), dtype=bool)
        normal[threat.normal_rows] = True
        step = np.median(np.diff(times[threat.normal_rows]))
        later = np.flatnonzero(normal[1:] & normal[:-1] & np.isclose(np.diff(times), step)) + 1
        phase = 2 * np.pi * np.mod(times, settings.period) / settings.period

        def inputs(at: np.ndarray, previous: np.ndarray) -> np.ndarray:
            return np.column_stack([rows[at][:, uncontrolled], previous, np.sin(phase[at]), np.cos(phase[at])])

        model = MLPRegressor(
            hidden_layer_sizes=self.hidden,
            max_iter=self.max_iter,
            early_stopping=True,
            random_state=settings.seed,
        )
        with warnings.catch_warnings():  # max_iter is the setting: reaching it is no news
            warnings.simplefilter("ignore", ConvergenceWarning)
            target = rows[later][:, controlled]
            model.fit(inputs(later, rows[later - 1][:, controlled]), target[:, 0] if len(controlled) == 1 else target)
        for episode in threat.episodes():
            previous = rows[max(int(episode[0]) - 1, 0), controlled][None, :]
            for row in episode:
                at = np.array([row])
                written = threat.project(model.predict(inputs(at, previous)).reshape(1, -1), at)
                rows[row, controlled] = written[0]
                previous = written
        return rows


def _smoothed_reach(touched: np.ndarray, groups: np.ndarray, span: int) -> np.ndarray:
    """Windows whose smoothed score reads a touched window's score: it or one of the `span - 1` before it in its run."""
    reach = touched.copy()
    for lag in range(1, span):
        same_run = groups[lag:] == groups[:-lag]
        reach[lag:] |= touched[:-lag] & same_run
    return reach


def _times(data: Any) -> np.ndarray:
    if data.row_times is None:
        raise TwinIDSError("this data carries no per-row times, which replay and the learned attacker need")
    return np.asarray(data.row_times, dtype=np.float64)
