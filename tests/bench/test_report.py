"""The benchmark report: figures named as the issue names them, targets judged the right way round."""

from __future__ import annotations

from twinids.bench.pipeline import measure_windowing
from twinids.bench.report import TARGETS, markdown_table


def test_windowing_benchmark_builds_one_window_per_start_inside_each_device():
    figures = measure_windowing(rows=10_000, features=40, window=20, devices=10)
    # 10 devices x 1000 rows, each cut into a train and a test run of 700 and 300 rows
    assert figures["windowing_windows"] == 10 * ((700 - 19) + (300 - 19))
    # windows are start offsets into the rows, never copies of them: the extra memory stays below the raw array
    assert figures["windowing_peak_memory_vs_raw_ratio"] < 1


def test_targets_compare_in_the_right_direction():
    by_key = {t.key: t for t in TARGETS}
    assert by_key["dp_step_vs_lstm_ratio"].met(2.9) and not by_key["dp_step_vs_lstm_ratio"].met(3.1)
    assert by_key["inference_windows_per_s"].met(120_000) and not by_key["inference_windows_per_s"].met(30_000)
    for situation in ("alone_choice_vs_fastest", "after_command_choice_vs_alone", "beside_busy_choice_vs_fastest"):
        target = by_key[f"wait_{situation}_ratio"]
        assert target.met(1.05) and not target.met(1.3)


def test_markdown_table_marks_missed_targets():
    table = markdown_table({"dp_step_vs_lstm_ratio": 1.7, "inference_windows_per_s": 29_000.0}, {"device": "cpu"})
    lines = table.splitlines()
    assert any("DP-SGD step" in line and line.endswith("yes |") for line in lines)
    assert any("inference" in line and line.endswith("NO |") for line in lines)
