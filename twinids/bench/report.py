"""Run every benchmark in one process and lay the figures out against their targets."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One headline figure, its goal, and which way is better."""

    key: str
    label: str
    goal: float
    higher_is_better: bool
    unit: str = ""

    def met(self, value: float) -> bool:
        """Whether the measured value reaches the goal."""
        return value >= self.goal if self.higher_is_better else value <= self.goal


TARGETS = (
    Target("dp_step_vs_lstm_ratio", "DP-SGD step (PrivateLSTM) / nn.LSTM step", 3.0, False, "x"),
    Target(
        "dp_epoch_vs_plain_epoch_ratio", "DP epoch / plain epoch, default LSTM and data, Lightning", 2.5, False, "x"
    ),
    Target(
        "canary_dp_epoch_vs_dp_epoch_ratio", "DP epoch with 1000 white-box audit canaries / without", 1.15, False, "x"
    ),
    Target("hybrid_dp_step_vs_plain_ratio", "hybrid (LSTM+SAE+MHA) DP step / its plain step", 3.0, False, "x"),
    Target("loop_overhead_ratio", "twinids Lightning loop / plain PyTorch loop", 1.10, False, "x"),
    Target("inference_windows_per_s", "LSTM detector inference", 100_000, True, " windows/s"),
    Target("stream_latency_p99_ms", "`twinids detect` latency p99, LSTM, 100 devices, 1,000/s", 5.0, False, " ms"),
    Target("windowing_s_1m_rows", "windows for 1M rows x 40 features", 2.0, False, " s"),
    Target("windowing_peak_memory_vs_raw_ratio", "windowing peak memory / raw array", 2.0, False, "x"),
    Target("prepare_s_1m_rows", "whole pipeline (sort, split, encode, window), 1M x 40", 2.0, False, " s"),
    Target("prepare_peak_memory_vs_raw_ratio", "whole pipeline peak memory / raw array", 2.0, False, "x"),
    Target("startup_help_s", "`twinids --help`", 0.3, False, " s"),
    Target("sweep_overhead_per_job_s", "sweep overhead per job, 20-job smoke sweep", 1.0, False, " s"),
    Target(
        "wait_alone_choice_vs_fastest_ratio",
        "OpenMP waits alone: twinids' choice / fastest candidate",
        1.10,
        False,
        "x",
    ),
    Target(
        "wait_after_command_choice_vs_alone_ratio",
        "OpenMP waits right after another command / alone, twinids' choice",
        1.10,
        False,
        "x",
    ),
    Target(
        "wait_beside_busy_choice_vs_fastest_ratio",
        "OpenMP waits beside a busy process: twinids' choice / fastest candidate",
        1.10,
        False,
        "x",
    ),
)


def machine_description(device: str, load_before: float | None = None) -> dict[str, str]:
    """What the figures were measured on, and how busy the machine was (neighbours slow torch several times)."""
    import torch

    from twinids.cpu_policy import applied_policy

    before = "?" if load_before is None else f"{load_before:.2f}"
    description = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": str(os.cpu_count()),
        "torch": torch.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "device": device,
        **applied_policy(),
        "1-min load before / after": f"{before} / {os.getloadavg()[0]:.2f}",
    }
    if device == "cuda" and torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name(0)
    if onnx_installed():
        import onnxruntime

        description["onnxruntime"] = onnxruntime.__version__
    else:
        description["onnxruntime"] = "not installed, its figures left out (pip install 'twinids[onnx]')"
    return description


def run_all(
    device: str = "cpu", threads: int = 2, quick: bool = False, only: Sequence[str] | None = None
) -> dict[str, float]:
    """Every benchmark (or those `only` names, from `CASES`), each against its baseline measured in this same run."""
    import torch

    from twinids.bench.dp_epoch import measure_dp_epoch
    from twinids.bench.dp_step import measure_dp_step
    from twinids.bench.hybrid_step import measure_hybrid_step
    from twinids.bench.onnx_runtime import measure_onnx
    from twinids.bench.pipeline import (
        measure_inference,
        measure_loop_overhead,
        measure_prepare,
        measure_startup,
        measure_windowing,
    )
    from twinids.bench.stream_latency import measure_stream
    from twinids.bench.sweep_overhead import measure_sweep_overhead
    from twinids.bench.wait_situations import measure_wait_situations
    from twinids.training.job import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(threads)
    onnx = onnx_installed()
    results: dict[str, float] = {}
    steps: dict[str, Callable[[], dict[str, float]]] = {
        "dp_step": lambda: measure_dp_step(threads=threads, device=device, repeats=5 if quick else 15),
        "hybrid_step": lambda: measure_hybrid_step(repeats=5 if quick else 15),
        "dp_epoch": lambda: measure_dp_epoch(["data.source.n_steps=1500"] if quick else [], repeats=1 if quick else 3),
        "loop_overhead": lambda: measure_loop_overhead(n_windows=5_000 if quick else 20_000, repeats=1 if quick else 5),
        "inference": lambda: measure_inference(n_windows=10_000 if quick else 50_000),
        "stream": lambda: measure_stream(seconds=2.0 if quick else 20.0),
        "onnx": lambda: (
            measure_onnx(threads=threads, batches=4 if quick else 20, rounds=2 if quick else 5) if onnx else {}
        ),
        "windowing": lambda: measure_windowing(rows=100_000 if quick else 1_000_000),
        "prepare": lambda: measure_prepare(rows=100_000 if quick else 1_000_000),
        "startup": lambda: measure_startup(repeats=2 if quick else 5),
        "sweep_overhead": lambda: measure_sweep_overhead(jobs=5 if quick else 20, baseline_jobs=1 if quick else 3),
        "wait_situations": lambda: measure_wait_situations(
            steps=10 if quick else 60, rounds=1 if quick else 3, previous_s=2.0 if quick else 30.0, threads=threads
        ),
    }
    assert tuple(steps) == CASES
    for name, step in steps.items():
        if only is None or name in only:
            results.update(step())
    return results


CASES = (
    "dp_step",
    "hybrid_step",
    "dp_epoch",
    "loop_overhead",
    "inference",
    "stream",
    "onnx",
    "windowing",
    "prepare",
    "startup",
    "sweep_overhead",
    "wait_situations",
)


def onnx_installed() -> bool:
    """Whether the onnx extra is installed; without it `bench` leaves onnxruntime out and says so (machine line)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("onnx", "onnxruntime", "onnxscript"))


def markdown_table(results: dict[str, float], machine: dict[str, str]) -> str:
    """The headline figures against their targets, then every raw figure, as Markdown."""
    lines = ["| figure | measured | target | met |", "|---|---:|---:|:---:|"]
    for target in TARGETS:
        if target.key not in results:
            continue
        value = results[target.key]
        sign = ">=" if target.higher_is_better else "<="
        lines.append(
            f"| {target.label} | {_format(value)}{target.unit} | {sign} {_format(target.goal)}{target.unit} | "
            f"{'yes' if target.met(value) else 'NO'} |"
        )
    if len(lines) == 2:  # `--only` cases without a target: no empty headline table
        lines = []
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), "", "| key | value |", "|---|---:|"]
    lines += [f"| {key} | {_format(value)} |" for key, value in sorted(results.items())]
    return "\n".join(lines) + "\n"


def _format(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
