"""measure_dp_step times every variant in one process and reports ratios against nn.LSTM."""

from __future__ import annotations

from twinids.bench import VARIANTS, measure_dp_step


def test_measure_dp_step_reports_time_throughput_memory_and_ratios_for_every_variant():
    result = measure_dp_step(batch=8, window=3, features=4, hidden=4, layers=1, threads=1, repeats=2, warmup=1)
    for variant in VARIANTS:
        assert result[f"{variant}_ms"] > 0
        assert result[f"{variant}_windows_per_s"] > 0
        assert result[f"{variant}_peak_mb"] >= 0
    for ratio in ("dp_step_vs_lstm_ratio", "dplstm_vs_lstm_ratio", "speedup_vs_dplstm"):
        assert result[ratio] > 0
    assert result["dp_step_vs_lstm_ratio"] == min(result["ghost_vs_lstm_ratio"], result["per_sample_vs_lstm_ratio"])
