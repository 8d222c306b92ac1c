"""The stream benchmark (issue 17 §1) reports latency at a paced rate, sustained readings/s and its baseline ratio."""

from __future__ import annotations

from twinids.bench.stream_latency import measure_stream


def test_the_stream_bench_reports_paced_latency_sustained_rate_and_the_batch_baseline():
    figures = measure_stream(rate=500.0, seconds=0.5)
    assert figures["stream_devices"] == 100 and figures["stream_rate_readings_per_s"] == 500
    assert 0 < figures["stream_latency_p50_ms"] <= figures["stream_latency_p99_ms"]
    assert figures["stream_sustained_readings_per_s"] > 0 and figures["stream_vs_batch_per_window_ratio"] > 0
