"""An exported detector on onnxruntime against the same detector on torch (issue 17 §2), measured in the same run.

The default LSTM (untrained weights: the cost does not depend on them) on the simulator, exported as
`twinids export` exports it, and both `WindowRule.score`s, torch's and the bundle's, on the same encoded windows:
the latency of one window (p50, one thread each, as `twinids detect` scores) and the windows/s of batches of 256
(`threads` threads each). Rounds alternate the two, so a neighbour slowing the machine slows both; each figure is
reported with its ratio onnxruntime / torch.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def measure_onnx(
    overrides: Sequence[str] = (),
    batch: int = 256,
    single_windows: int = 200,
    batches: int = 20,
    rounds: int = 5,
    threads: int = 2,
) -> dict[str, float]:
    """p50 ms of one window and windows/s of `batch`-window batches, torch and onnxruntime, and their ratios."""
    import torch

    from twinids.config import compose
    from twinids.data.registry import build_windows
    from twinids.stream.bundle import load_bundle
    from twinids.stream.export import export_detector
    from twinids.training.detector import make_detector

    cfg = compose(["data.source.n_steps=1000", "seed=0", *overrides])
    data = build_windows(cfg.data, evaluated_splits=())
    detector = make_detector(cfg, data, training=False)
    torch_score = detector.window_rule().score
    starts = np.concatenate([data.starts[split] for split in ("train", "val", "test")])
    windows = data.rows[starts[: batch * batches, None] + np.arange(data.window)]
    with tempfile.TemporaryDirectory(prefix="twinids-bench-") as scratch:
        folder = export_detector(detector, data, None, {"model": str(cfg.model.name)}, Path(scratch) / "bundle")
        single_onnx, batch_onnx = (load_bundle(folder, n).rule.score for n in (1, threads))
    previous = torch.get_num_threads()
    latency: dict[str, list[float]] = {"torch": [], "onnx": []}
    rate: dict[str, list[float]] = {"torch": [], "onnx": []}
    try:
        for _ in range(rounds):
            torch.set_num_threads(1)
            for name, score in (("torch", torch_score), ("onnx", single_onnx)):
                latency[name].append(_median_single(score, windows[:single_windows]))
            torch.set_num_threads(threads)
            for name, score in (("torch", torch_score), ("onnx", batch_onnx)):
                rate[name].append(_windows_per_s(score, windows, batch))
    finally:
        torch.set_num_threads(previous)
    figures = {f"onnx_bench_{name}_batch1_p50_ms": statistics.median(v) * 1e3 for name, v in latency.items()}
    figures |= {f"onnx_bench_{name}_batch{batch}_windows_per_s": statistics.median(v) for name, v in rate.items()}
    figures["onnx_vs_torch_batch1_latency_ratio"] = statistics.median(latency["onnx"]) / statistics.median(
        latency["torch"]
    )
    figures[f"onnx_vs_torch_batch{batch}_throughput_ratio"] = statistics.median(rate["onnx"]) / statistics.median(
        rate["torch"]
    )
    return figures


def _median_single(score: Callable[[np.ndarray], object], windows: np.ndarray) -> float:
    """Median seconds to score one window, over the windows given one at a time."""
    times = []
    for index in range(len(windows)):
        began = time.perf_counter()
        score(windows[index : index + 1])
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _windows_per_s(score: Callable[[np.ndarray], object], windows: np.ndarray, batch: int) -> float:
    """Windows scored per second in batches of `batch`."""
    began = time.perf_counter()
    for first in range(0, len(windows), batch):
        score(windows[first : first + batch])
    return len(windows) / (time.perf_counter() - began)
