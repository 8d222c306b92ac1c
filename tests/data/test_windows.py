"""Sliding windows: counts, run boundaries and window labels."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from twinids.data.windows import run_boundaries, window_starts, window_targets


@given(
    run_lengths=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8),
    window=st.integers(min_value=1, max_value=12),
    stride=st.integers(min_value=1, max_value=5),
)
def test_window_count_per_run_is_floor_of_length_minus_window_over_stride_plus_one(run_lengths, window, stride):
    keys = np.repeat(np.arange(len(run_lengths)), run_lengths)
    if len(keys) == 0:
        return
    starts = window_starts(run_boundaries(keys), window, stride)
    expected = sum(max(0, (n - window) // stride + 1) for n in run_lengths if n > 0)
    assert len(starts) == expected


@given(
    run_lengths=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=6),
    window=st.integers(min_value=1, max_value=10),
)
def test_no_window_crosses_a_run_boundary(run_lengths, window):
    keys = np.repeat(np.arange(len(run_lengths)), run_lengths)
    starts = window_starts(run_boundaries(keys), window, 1)
    assert np.all(keys[starts] == keys[starts + window - 1])


def test_runs_change_when_any_key_changes():
    device = np.array(["a", "a", "a", "b", "b"], dtype=object)
    split = np.array(["train", "train", "test", "test", "test"], dtype=object)
    assert run_boundaries(device, split).tolist() == [0, 2, 3, 5]


def test_last_mode_labels_a_window_by_its_final_row():
    codes = np.array([0, 0, 1, 0, 0, 2])
    starts = np.array([0, 1, 2, 3])
    assert window_targets(codes, starts, 3, "last").tolist() == [1, 0, 0, 2]


def test_any_mode_labels_a_window_by_its_latest_attacked_row():
    codes = np.array([0, 3, 0, 0, 0, 2, 1])
    starts = np.array([0, 1, 2, 3, 4])
    assert window_targets(codes, starts, 3, "any").tolist() == [3, 3, 0, 2, 1]
