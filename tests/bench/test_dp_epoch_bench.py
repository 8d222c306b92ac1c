"""`twinids bench`'s epoch figures: plain, DP-SGD and DP-SGD with audit canaries, all through the real training path."""

from __future__ import annotations

from twinids.bench.dp_epoch import measure_dp_epoch


def test_the_epoch_bench_times_plain_dp_and_canary_epochs_and_gives_their_ratios():
    result = measure_dp_epoch(["data.source.n_steps=900"], repeats=1, canaries=50)
    for name in ("plain_epoch_s", "dp_epoch_s", "canary_dp_epoch_s"):
        assert result[name] > 0
    assert result["canary_dp_epoch_vs_dp_epoch_ratio"] == result["canary_dp_epoch_s"] / result["dp_epoch_s"]
    assert result["epoch_canaries"] == 50 and result["epoch_train_windows"] > 0
