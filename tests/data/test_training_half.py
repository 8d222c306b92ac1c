"""`data.train_half`: a shadow model's random half of the training split, drawn over blocks of readings."""

from __future__ import annotations

import numpy as np
import pytest

from twinids.data.halves import readings_read, training_half, windows_touching
from twinids.data.registry import build_windows
from twinids.errors import TwinIDSError


@pytest.fixture(scope="module")
def simulator(shipped_config):
    return build_windows(shipped_config("data.source.n_steps=900").data)


def test_a_half_keeps_about_half_the_training_windows_and_every_held_out_one(simulator):
    half = training_half(simulator, seed=0, block=200)
    assert 0.35 < len(half.starts["train"]) / len(simulator.starts["train"]) < 0.55
    for split in ("val", "test"):
        assert np.array_equal(half.starts[split], simulator.starts[split])
    assert len(half.targets["train"]) == len(half.attacks["train"]) == len(half.starts["train"])


def test_no_dropped_window_shares_a_reading_with_a_kept_one(simulator):
    half = training_half(simulator, seed=3, block=200)
    read = readings_read(half, "train")
    kept = set(half.starts["train"].tolist())
    all_windows = np.arange(len(simulator.starts["train"]))
    touching = windows_touching(simulator, "train", all_windows, read)
    inside_dropped = np.array([s not in kept for s in simulator.starts["train"]]) & ~touching
    # a window is either kept, or fully outside every kept window's readings, or straddles both (then not "out")
    starts = simulator.starts["train"][inside_dropped]
    assert not np.intersect1d((starts[:, None] + np.arange(simulator.window)).ravel(), np.flatnonzero(read)).size
    assert inside_dropped.sum() > 0.3 * len(all_windows)


def test_different_seeds_draw_different_halves_and_a_seed_draws_the_same_one(simulator):
    first, again, other = (training_half(simulator, s, 200).starts["train"] for s in (0, 0, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_a_block_shorter_than_a_window_is_refused(simulator):
    with pytest.raises(TwinIDSError, match="train_half_block=10 is shorter than a window"):
        training_half(simulator, 0, 10)


def test_the_data_config_draws_the_half(shipped_config):
    data = build_windows(shipped_config("data.source.n_steps=900", "data.train_half=2").data)
    assert len(data.starts["train"]) < 0.6 * len(
        build_windows(shipped_config("data.source.n_steps=900").data).starts["train"]
    )
