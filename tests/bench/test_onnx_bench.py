"""The onnxruntime benchmark (issue 17 §2) reports torch and onnxruntime side by side, each ratio from the same run."""

from __future__ import annotations

import pytest

from twinids.bench.onnx_runtime import measure_onnx


def test_the_onnx_bench_reports_latency_and_throughput_against_torch_measured_in_the_same_run():
    figures = measure_onnx(batch=32, single_windows=5, batches=2, rounds=1, threads=1)
    for runtime in ("torch", "onnx"):
        assert figures[f"onnx_bench_{runtime}_batch1_p50_ms"] > 0
        assert figures[f"onnx_bench_{runtime}_batch32_windows_per_s"] > 0
    assert figures["onnx_vs_torch_batch1_latency_ratio"] == pytest.approx(
        figures["onnx_bench_onnx_batch1_p50_ms"] / figures["onnx_bench_torch_batch1_p50_ms"]
    )
    assert figures["onnx_vs_torch_batch32_throughput_ratio"] == pytest.approx(
        figures["onnx_bench_onnx_batch32_windows_per_s"] / figures["onnx_bench_torch_batch32_windows_per_s"]
    )


def test_the_bench_names_onnxruntime_in_its_machine_line():
    from twinids.bench.report import machine_description

    assert "onnxruntime" in machine_description("cpu")


def test_bench_only_refuses_an_unknown_case_in_one_line(twinids_cli):
    result = twinids_cli("bench", "--only", "onnx,nope")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and "unknown case(s) ['nope']" in lines[0], result.stderr
