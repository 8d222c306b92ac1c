"""Sliding windows as start indices into one row array, built without a Python loop per window.

Windows never cross a run boundary: a run is a maximal block of consecutive rows with the same device,
segment and split, so no window mixes devices, blocks or train/test rows.
"""

from __future__ import annotations

import numpy as np

LABEL_MODES = ("last", "any")


def run_boundaries(*keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal consecutive key tuples, plus the total length at the end."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.append(np.flatnonzero(change), n)


def window_starts(boundaries: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Start row of every window of `window` rows, `stride` apart, inside each run."""
    run_start, run_length = boundaries[:-1], np.diff(boundaries)
    per_run = np.maximum(0, (run_length - window) // stride + 1)
    total = int(per_run.sum())
    run_of_window = np.repeat(np.arange(len(per_run)), per_run)
    first_window_of_run = np.cumsum(per_run) - per_run
    index_in_run = np.arange(total) - first_window_of_run[run_of_window]
    return run_start[run_of_window] + index_in_run * stride


def window_label_rows(row_codes: np.ndarray, starts: np.ndarray, window: int, mode: str) -> np.ndarray:
    """Index of the row whose class each window takes (0 = normal in `row_codes`).

    last: the window's last row (online detection). any: the latest attacked row in the window, or the
    last row if the window holds no attack. The same row gives the window its attack type.
    """
    ends = starts + window - 1
    if mode == "last":
        return ends
    if mode == "any":
        attacked_index = np.where(row_codes > 0, np.arange(len(row_codes)), -1)
        latest_attack = np.maximum.accumulate(attacked_index)[ends]
        return np.where(latest_attack >= starts, latest_attack, ends)
    raise ValueError(f"unknown label mode {mode!r}; valid: {LABEL_MODES}")


def window_targets(row_codes: np.ndarray, starts: np.ndarray, window: int, mode: str) -> np.ndarray:
    """Target class of each window from per-row class codes (see `window_label_rows`)."""
    return row_codes[window_label_rows(row_codes, starts, window, mode)]
