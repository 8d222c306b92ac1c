"""measure_dp_step times every variant in one process and reports ratios against nn.LSTM, and its peak memory
counts what each step must hold: a gradient per parameter, and per window for per-sample clipping."""

from __future__ import annotations

from torch import nn

from twinids.bench import VARIANTS, measure_dp_step

BATCH, FEATURES, HIDDEN = 8, 4, 32


def gradient_bytes() -> int:
    """Bytes of one gradient of the benchmarked detector (LSTM -> Linear(hidden, 2)), float32."""
    modules = (nn.LSTM(FEATURES, HIDDEN, 1, batch_first=True), nn.Linear(HIDDEN, 2))
    return 4 * sum(parameter.numel() for module in modules for parameter in module.parameters())


def test_measure_dp_step_reports_time_throughput_memory_and_ratios_for_every_variant():
    result = measure_dp_step(
        batch=BATCH, window=3, features=FEATURES, hidden=HIDDEN, layers=1, threads=1, repeats=2, warmup=1
    )
    peak = {variant: result[f"{variant}_peak_mb"] * 2**20 for variant in VARIANTS}
    for variant in VARIANTS:
        assert result[f"{variant}_ms"] > 0
        assert result[f"{variant}_windows_per_s"] > 0
        assert peak[variant] >= gradient_bytes(), variant  # the step allocates a gradient for every parameter
    per_window = BATCH * gradient_bytes()
    # Opacus' DPLSTM and per-sample clipping materialise one gradient per window; ghost clipping never does.
    assert peak["dplstm"] >= per_window and peak["per_sample"] >= per_window
    assert peak["ghost"] < per_window
    for ratio in ("dp_step_vs_lstm_ratio", "dplstm_vs_lstm_ratio", "speedup_vs_dplstm"):
        assert result[ratio] > 0
    assert result["dp_step_vs_lstm_ratio"] == min(result["ghost_vs_lstm_ratio"], result["per_sample_vs_lstm_ratio"])
