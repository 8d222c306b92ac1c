"""Online detection speed (issue 17 §1): decision latency per reading and sustained readings/s of `twinids detect`.

The default LSTM (untrained weights: the cost does not depend on them) on the simulator with 100 devices, each
reading pushed through `OnlineDetector` as `twinids detect` pushes it. Three figures: the latency from a reading's
arrival to its window's decision when readings arrive at `rate` per second (p50 and p99; a reading that waits for
the previous one counts its wait), the readings/s sustained when they arrive as fast as the detector takes them, and
the time per window online (readings taken in the batches that arrive together) against the time per window when the
same windows are scored in batches of 2,048 (the baseline, measured in the same run).
"""

from __future__ import annotations

import time

import numpy as np

DEVICES = "{heated_room: 34, water_tank: 33, conveyor: 33}"


def measure_stream(rate: float = 1000.0, seconds: float = 10.0, n_steps: int = 500) -> dict[str, float]:
    """Latency at `rate` readings/s over `seconds`, sustained readings/s, and online / batch time per window."""
    import torch

    from twinids.config import compose
    from twinids.data.registry import build_windows, load_frame
    from twinids.stream.online import OnlineDetector
    from twinids.training.detector import make_detector

    torch.set_num_threads(1)  # as `twinids detect` scores: one small window at a time
    cfg = compose([f"data.source.devices={DEVICES}", f"data.source.n_steps={n_steps}", "seed=0"])
    data = build_windows(cfg.data, evaluated_splits=())
    rule = make_detector(cfg, data, training=False).window_rule()
    readings = load_frame(cfg.data).sort_values(["time", "device"], kind="stable").to_dict("records")

    def fresh() -> OnlineDetector:
        return OnlineDetector(rule, data.encoder, data.window, data.class_names)

    warm = fresh()  # fill every device's window first: the figures are for a running stream
    warm_up = data.window * 100
    warm.push_many(readings[:warm_up])
    paced = readings[warm_up : warm_up + int(rate * seconds)]
    latencies: list[float] = []
    started, taken = time.perf_counter(), 0
    while taken < len(paced):  # each pass takes every reading that has arrived by then, as `twinids detect` does
        now = time.perf_counter()
        arrived = min(len(paced), int((now - started) * rate) + 1)
        if arrived <= taken:
            continue
        outcomes = warm.push_many(paced[taken:arrived])
        decided_at = time.perf_counter()
        decided = [index for index in range(taken, arrived) if outcomes[index - taken] is not None]
        latencies += [decided_at - (started + index / rate) for index in decided]
        taken = arrived

    online = fresh()
    began = time.perf_counter()
    decided = sum(outcome is not None for outcome in online.push_many(readings))
    online_s = time.perf_counter() - began

    windows = data.rows[
        np.concatenate([data.starts[split] for split in ("train", "val", "test")])[:, None] + np.arange(data.window)
    ]
    with torch.no_grad():
        began = time.perf_counter()
        for first in range(0, len(windows), 2048):
            rule.score(windows[first : first + 2048])
        batch_s = time.perf_counter() - began
    return {
        "stream_latency_p50_ms": float(np.percentile(latencies, 50)) * 1e3,
        "stream_latency_p99_ms": float(np.percentile(latencies, 99)) * 1e3,
        "stream_rate_readings_per_s": rate,
        "stream_devices": 100.0,
        "stream_sustained_readings_per_s": len(readings) / online_s,
        "stream_vs_batch_per_window_ratio": (online_s / decided) / (batch_s / len(windows)),
    }
