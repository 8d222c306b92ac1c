"""Time one training step of an LSTM detector, non-private and under DP-SGD, all in one process.

Variants (same detector: LSTM -> last step -> Linear(hidden, 2), cross-entropy, SGD, same fixed batch):
``lstm`` (``nn.LSTM``, non-private), ``private_lstm`` (PrivateLSTM, non-private), ``dplstm`` (Opacus
DPLSTM under DP-SGD), ``ghost`` and ``per_sample`` (PrivateLSTM under DP-SGD with ghost clipping or
materialised per-sample gradients). Rounds visit the variants in turn, so a noisy machine slows all of
them alike; each figure is the median over rounds. Compare ratios, not milliseconds, across machines.

Peak memory (``*_peak_mb``) is the peak of tensor bytes allocated above the level at the start of one
step: on CPU from the profiler's allocation events (torch tensors only; the allocator's cache and
library-internal scratch are not counted), on CUDA from ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator

import torch
from opacus.layers import DPLSTM
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, TensorDataset

from twinids.privacy.engine import make_private
from twinids.privacy.lstm import PrivateLSTM

VARIANTS = ("lstm", "private_lstm", "dplstm", "ghost", "per_sample")


class _Detector(nn.Module):
    """The benchmarked model: a recurrent layer, its last output step, a linear head."""

    def __init__(self, recurrent: nn.Module, hidden: int) -> None:
        super().__init__()
        self.recurrent = recurrent
        self.head = nn.Linear(hidden, 2)

    def forward(self, windows: Tensor) -> Tensor:
        output, _ = self.recurrent(windows)
        return self.head(output[:, -1])


def measure_dp_step(
    batch: int = 256,
    window: int = 10,
    features: int = 40,
    hidden: int = 64,
    layers: int = 2,
    threads: int = 2,
    device: str = "cpu",
    repeats: int = 15,
    warmup: int = 3,
    variants: tuple[str, ...] = VARIANTS,
    memory: bool = True,
) -> dict[str, float]:
    """Median time of one SGD step per variant, windows/s, ratios and peak step memory.

    Args:
        batch: windows per step.
        window: time steps per window.
        features: features per time step.
        hidden: LSTM hidden units.
        layers: stacked LSTM layers.
        threads: torch intra-op threads (CPU); restored afterwards.
        device: ``"cpu"`` or ``"cuda"``.
        repeats: timed rounds (each round runs every variant once).
        warmup: untimed steps per variant first.
        variants: which of ``VARIANTS`` to run; ratios appear when their variants ran.
        memory: also measure peak step memory (one extra profiled step per variant).

    Returns:
        ``{variant}_ms`` (median), ``{variant}_min_ms``, ``{variant}_windows_per_s``, ``{variant}_peak_mb``
        per variant, and ``dp_step_vs_lstm_ratio`` (best PrivateLSTM DP mode / nn.LSTM, medians;
        ``dp_step_vs_lstm_ratio_min`` from the fastest rounds), ``ghost_vs_lstm_ratio``,
        ``per_sample_vs_lstm_ratio``, ``dplstm_vs_lstm_ratio``, ``private_lstm_vs_lstm_ratio``,
        ``speedup_vs_dplstm`` (DPLSTM / best PrivateLSTM DP mode), plus the shape as numbers.
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {VARIANTS}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            # Opacus's DPLSTM triggers PyTorch's hook-order warning every step; the engine warns once
            # about its non-secure RNG. Neither says anything about the timings.
            warnings.simplefilter("ignore", UserWarning)
            return _measure(batch, window, features, hidden, layers, threads, device, repeats, warmup, variants, memory)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(
    batch: int,
    window: int,
    features: int,
    hidden: int,
    layers: int,
    threads: int,
    device: str,
    repeats: int,
    warmup: int,
    variants: tuple[str, ...],
    memory: bool,
) -> dict[str, float]:
    """The body of :func:`measure_dp_step`, with threads and warnings already set."""
    torch.manual_seed(0)
    dev = torch.device(device)
    windows = torch.randn(batch, window, features, device=dev)
    labels = torch.randint(0, 2, (batch,), device=dev)
    steps = {name: _build_step(name, windows, labels, hidden, layers) for name in variants}
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_timed(steps[name], dev))
    result: dict[str, float] = {
        "batch": batch,
        "window": window,
        "features": features,
        "hidden": hidden,
        "layers": layers,
        "threads": threads,
    }
    for name, samples in times.items():
        seconds = statistics.median(samples)
        result[f"{name}_ms"] = seconds * 1e3
        result[f"{name}_min_ms"] = min(samples) * 1e3
        result[f"{name}_windows_per_s"] = batch / seconds
        if memory:
            result[f"{name}_peak_mb"] = _peak_step_mb(steps[name], dev)
    _add_ratios(result)
    return result


def _add_ratios(result: dict[str, float]) -> None:
    """Ratios against the non-private nn.LSTM step and against Opacus's DPLSTM."""
    if "lstm_ms" not in result:
        return
    base = result["lstm_ms"]
    for name in ("private_lstm", "dplstm", "ghost", "per_sample"):
        if f"{name}_ms" in result:
            result[f"{name}_vs_lstm_ratio"] = result[f"{name}_ms"] / base
    modes = [m for m in ("ghost", "per_sample") if f"{m}_ms" in result]
    if modes:
        best = min(modes, key=lambda m: result[f"{m}_ms"])
        result["dp_step_vs_lstm_ratio"] = result[f"{best}_ms"] / base
        # Fastest rounds only: on a machine shared with other jobs, the least disturbed figure.
        result["dp_step_vs_lstm_ratio_min"] = result[f"{best}_min_ms"] / result["lstm_min_ms"]
        if "dplstm_ms" in result:
            result["speedup_vs_dplstm"] = result["dplstm_ms"] / result[f"{best}_ms"]


def _build_step(name: str, windows: Tensor, labels: Tensor, hidden: int, layers: int) -> Callable[[], None]:
    """A closure running one full training step (zero grad, forward, loss, backward, optimizer step)."""
    features = windows.shape[2]
    dev = windows.device
    if name in ("lstm", "private_lstm"):
        recurrent_cls = nn.LSTM if name == "lstm" else PrivateLSTM
        model = _Detector(recurrent_cls(features, hidden, layers, batch_first=True), hidden).to(dev)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        criterion = nn.CrossEntropyLoss()
    else:
        recurrent = (
            DPLSTM(features, hidden, layers, batch_first=True)
            if name == "dplstm"
            else PrivateLSTM(features, hidden, layers, batch_first=True)
        )
        model = _Detector(recurrent, hidden).to(dev)
        loader = DataLoader(TensorDataset(windows.cpu(), labels.cpu()), batch_size=windows.shape[0])
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.01),
            loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            clipping="ghost" if name == "ghost" else "per_sample",
            criterion=nn.CrossEntropyLoss(),
        )
        model, optimizer, criterion = private.module, private.optimizer, private.criterion

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(windows), labels)
        loss.backward()
        optimizer.step()

    return step


def _timed(step: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of one step, synchronising the GPU around it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _peak_step_mb(step: Callable[[], None], device: torch.device) -> float:
    """Peak tensor memory (MiB) allocated during one step above the level at its start."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    with warnings.catch_warnings(), _native_stderr_silenced():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    level = peak = 0
    for event in events:
        if event.device_type() == DeviceType.CPU:
            level += event.nbytes()
            peak = max(peak, level)
    return peak / 2**20


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence the profiler's C++ start/stop lines, which bypass Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
