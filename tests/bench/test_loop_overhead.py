"""The loop-overhead bench: per-epoch figures of the plain loop and of the Lightning loop with and without MLflow."""

from __future__ import annotations

import pytest

from twinids.bench.pipeline import measure_loop_overhead


def test_the_lightning_loop_is_timed_per_epoch_with_its_fit_setup_reported_apart():
    figures = measure_loop_overhead(n_windows=512, window=4, features=4, epochs=2, batch=128, repeats=1)
    assert figures["loop_overhead_ratio"] == pytest.approx(
        figures["twinids_loop_s_per_epoch"] / figures["plain_loop_s_per_epoch"]
    )
    assert figures["loop_overhead_without_logger_ratio"] == pytest.approx(
        figures["untracked_loop_s_per_epoch"] / figures["plain_loop_s_per_epoch"]
    )
    assert figures["twinids_fit_setup_s"] > 0  # the fit's own setup and teardown lie outside the epochs
