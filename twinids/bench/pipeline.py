"""Benchmarks of the non-private pipeline: Lightning loop overhead, inference rate, windowing, start-up time.

Each figure is measured against its baseline in the same process and run, so ratios are comparable on a
noisy machine even when absolute numbers are not.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch


def synthetic_windows(
    n_windows: int, window: int, features: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encoded rows, window starts and binary targets of one long stream (benchmark input, not a dataset)."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n_windows + window - 1, features)).astype(np.float32)
    starts = np.arange(n_windows)
    targets = (rng.random(n_windows) < 0.2).astype(np.int64)
    return rows, starts, targets


def bench_lstm(features: int) -> torch.nn.Module:
    """The benchmarked LSTM detector: 2 layers of 64, as in `dp_step` (its size is fixed here, not read from the
    model YAML, so that figures stay comparable when the default model changes)."""
    from twinids.models.lstm import LSTMDetector

    return LSTMDetector(features, 2, hidden_size=64, num_layers=2, dropout=0.1, bidirectional=False)


def _loader(rows: np.ndarray, starts: np.ndarray, targets: np.ndarray, window: int, batch: int, shuffle: bool):
    from torch.utils.data import DataLoader

    from twinids.data.datamodule import WindowDataset, keep_batch

    dataset = WindowDataset(torch.from_numpy(rows), starts, targets, window)
    return DataLoader(dataset, batch_size=batch, shuffle=shuffle, collate_fn=keep_batch)


def measure_loop_overhead(
    n_windows: int = 20_000,
    window: int = 10,
    features: int = 40,
    epochs: int = 2,
    batch: int = 256,
    repeats: int = 3,
) -> dict[str, float]:
    """Seconds per epoch of the twinids Lightning loop vs a plain PyTorch loop, with and without the MLflow logger.

    The Lightning figure spans the epochs, from the first one's start to the end of training (its epoch-end
    logging included), not the fit's one-off setup and teardown: a 2-epoch bench would weigh those ten times more
    than a real run does; they are reported apart (`twinids_fit_setup_s`). Both loops are warmed up once first,
    and the three variants take turns in every repeat so that drift in machine load hits them alike.
    """
    import pytorch_lightning as pl

    from twinids.models.classifier import ClassifierModule
    from twinids.tracking.run import start_run

    rows, starts, targets = synthetic_windows(n_windows, window, features)

    class TrainingSpan(pl.Callback):
        """When the first training epoch starts and when training ends."""

        def __init__(self) -> None:
            self.began = self.ended = 0.0

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.began = self.began or time.perf_counter()

        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self.ended = time.perf_counter()

    def plain() -> float:
        torch.manual_seed(0)
        net = bench_lstm(features)
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        net.train()
        began = time.perf_counter()
        for _ in range(epochs):
            for windows, labels, _, _ in _loader(rows, starts, targets, window, batch, True):
                optimizer.zero_grad()
                loss = loss_fn(net(windows), labels)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
        return (time.perf_counter() - began) / epochs

    def lightning(store: Path, tracked: bool) -> tuple[float, float]:
        """Seconds per epoch, and the fit's seconds outside its epochs."""
        torch.manual_seed(0)
        module = ClassifierModule(bench_lstm(features), lambda p: torch.optim.Adam(p, lr=3e-3), ["normal", "attack"])
        span = TrainingSpan()
        with start_run("bench", f"sqlite:///{store / 'mlflow.db'}") as run:
            trainer = pl.Trainer(
                max_epochs=epochs,
                accelerator="cpu",
                logger=run.logger if tracked else False,
                log_every_n_steps=25,
                gradient_clip_val=1.0,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                limit_val_batches=0,
                default_root_dir=str(store),
                callbacks=[span],
            )
            began = time.perf_counter()
            trainer.fit(module, train_dataloaders=_loader(rows, starts, targets, window, batch, True))
            fit_s = time.perf_counter() - began
        epochs_s = span.ended - span.began
        return epochs_s / epochs, fit_s - epochs_s

    with tempfile.TemporaryDirectory() as folder:
        plain()  # warm-up (allocator, thread pool)
        lightning(Path(folder), tracked=True)  # warm-up (Lightning's and MLflow's first-call work)
        plain_s, tracked_s, untracked_s, setup_s = [], [], [], []
        for _ in range(repeats):
            plain_s.append(plain())
            per_epoch, setup = lightning(Path(folder), tracked=True)
            tracked_s.append(per_epoch)
            setup_s.append(setup)
            untracked_s.append(lightning(Path(folder), tracked=False)[0])
    plain_median, tracked_median = statistics.median(plain_s), statistics.median(tracked_s)
    untracked_median = statistics.median(untracked_s)
    return {
        "plain_loop_s_per_epoch": plain_median,
        "twinids_loop_s_per_epoch": tracked_median,
        "loop_overhead_ratio": tracked_median / plain_median,
        "untracked_loop_s_per_epoch": untracked_median,
        "loop_overhead_without_logger_ratio": untracked_median / plain_median,
        "twinids_fit_setup_s": statistics.median(setup_s),
    }


def measure_inference(
    n_windows: int = 50_000, window: int = 10, features: int = 40, batch: int = 4096, repeats: int = 3
) -> dict[str, float]:
    """Windows per second of batched LSTM-detector inference through the twinids data path."""
    rows, starts, targets = synthetic_windows(n_windows, window, features)
    net = bench_lstm(features).eval()
    timings = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            began = time.perf_counter()
            for windows, *_ in _loader(rows, starts, targets, window, batch, False):
                net(windows).softmax(dim=1)
            timings.append(time.perf_counter() - began)
    return {"inference_windows_per_s": n_windows / statistics.median(timings[1:])}


def measure_windowing(
    rows: int = 1_000_000, features: int = 40, window: int = 20, devices: int = 10
) -> dict[str, float]:
    """Time and peak extra memory to build windows and targets for a (rows x features) array."""
    from twinids.data.datamodule import WindowDataset
    from twinids.data.windows import run_boundaries, window_starts, window_targets

    rng = np.random.default_rng(0)
    raw = rng.standard_normal((rows, features)).astype(np.float32)
    per_device = rows // devices
    device = np.arange(rows) // per_device  # equal blocks; the remainder forms one short extra device
    split = np.where(np.arange(rows) % per_device < 0.7 * per_device, 0, 1)
    codes = (rng.random(rows) < 0.1).astype(np.int64)
    tracemalloc.start()
    began = time.perf_counter()
    boundaries = run_boundaries(device, split)
    starts = window_starts(boundaries, window, 1)
    targets = window_targets(codes, starts, window, "any")
    dataset = WindowDataset(torch.from_numpy(raw), starts, targets, window)
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del dataset
    return {
        "windowing_s_1m_rows": elapsed,
        "windowing_peak_memory_vs_raw_ratio": peak / raw.nbytes,
        "windowing_windows": float(len(starts)),
    }


def measure_prepare(rows: int = 1_000_000, features: int = 40, window: int = 20, devices: int = 10) -> dict[str, float]:
    """Time and peak memory of the whole frame-to-windows pipeline (sort, split, encode on train, window)."""
    import pandas as pd
    import sklearn.compose
    import sklearn.preprocessing  # noqa: F401  (imported before timing: import cost is start-up, not pipeline)

    from twinids.data.prepare import prepare_windows
    from twinids.data.registry import default_window_settings

    rng = np.random.default_rng(0)
    raw = rng.standard_normal((rows, features)).astype(np.float32)
    frame = pd.DataFrame(raw, columns=[f"f{i}" for i in range(features)])
    frame["device"] = np.repeat(np.arange(devices), rows // devices + 1)[:rows].astype(str)
    frame["time"] = np.arange(rows, dtype=np.float64)
    frame["label"] = (rng.random(rows) < 0.1).astype(np.int64)
    frame["attack"] = np.where(frame["label"] == 1, "injection", "normal")
    settings = default_window_settings(window=window)
    prepare_windows(frame.head(1000), settings)  # warm-up: scikit-learn loads more of itself on first use
    began = time.perf_counter()
    prepare_windows(frame, settings)
    elapsed = time.perf_counter() - began
    tracemalloc.start()  # a second pass for memory: tracing every allocation slows the pass itself severalfold
    prepare_windows(frame, settings)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"prepare_s_1m_rows": elapsed, "prepare_peak_memory_vs_raw_ratio": peak / raw.nbytes}


def measure_startup(repeats: int = 5) -> dict[str, float]:
    """Median wall time of `twinids --help` in a fresh interpreter."""
    command = [sys.executable, "-m", "twinids.cli.main", "--help"]
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        timings.append(time.perf_counter() - began)
    return {"startup_help_s": statistics.median(timings)}
