"""The frame-to-windows pipeline holds at most twice the raw array at its peak (a memory figure, not a timing)."""

from __future__ import annotations

from twinids.bench.pipeline import measure_prepare


def test_the_whole_pipeline_peaks_below_twice_the_raw_array():
    figures = measure_prepare(rows=200_000)
    assert figures["prepare_peak_memory_vs_raw_ratio"] <= 2.0
