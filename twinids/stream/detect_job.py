"""`twinids detect RUN_ID --source SRC`: a trained detector on a live stream, one JSON alert per line.

The detector and the encoder fitted on its training rows are rebuilt from the run's checkpoint and data config (as
`twinids eval` does), so each window online holds what the same window holds offline; each reading is cut to the run's
view (`data.view`, recorded with the run) before the detector reads it. Readings a detector cannot
take are logged to stderr, one line each, and skipped; the stream goes on. Nothing is logged to MLflow: a stream has
no end to report on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError
from twinids.stream.online import BadReading, OnlineDetector

log = logging.getLogger("twinids.detect")


@dataclass(frozen=True)
class StreamSummary:
    """What a detection stream did: readings taken and skipped, windows decided, alerts written, latency."""

    readings: int
    skipped: int
    decided: int
    alerts: int
    latency_ms_p50: float
    latency_ms_p99: float

    def line(self) -> str:
        """One line for stderr."""
        return (
            f"{self.readings} readings ({self.skipped} skipped), {self.decided} windows decided, {self.alerts} alerts "
            f"written; decision latency p50 {self.latency_ms_p50:.2f} ms, p99 {self.latency_ms_p99:.2f} ms"
        )


@dataclass(frozen=True)
class LoadedRun:
    """A trained run's detector with its weights loaded, the windows its data config builds, and its config."""

    detector: Any
    data: Any
    cfg: Any
    run_id: str
    card: Any  # its model card (config, overrides, privacy spent)

    @property
    def devices(self) -> list[str] | None:
        """The devices the run's data holds (None: the data names none)."""
        return np.unique(self.data.row_devices).tolist() if self.data.row_devices is not None else None


def load_run(run_id: str, tracking_uri: str | None, scratch: Path) -> LoadedRun:
    """The detector of a run id or checkpoint path, rebuilt from its checkpoint and data config (as `eval` does)."""
    from omegaconf import OmegaConf

    from twinids.data.registry import build_windows
    from twinids.tracking.queries import download_checkpoint
    from twinids.training.checkpoint_io import read_card
    from twinids.training.detector import make_detector
    from twinids.training.evaluate import check_compatible
    from twinids.training.job import quiet_libraries

    quiet_libraries()
    path = Path(run_id)
    checkpoint = path if path.suffix else download_checkpoint(run_id, scratch, tracking_uri)
    card = read_card(checkpoint)
    cfg = OmegaConf.create(card.config)
    data = build_windows(cfg.data, evaluated_splits=())
    check_compatible(card.feature_names, card.class_names, data.feature_names, data.class_names)
    detector = make_detector(cfg, data, training=False)
    detector.load(checkpoint)
    return LoadedRun(detector, data, cfg, card.run_id, card)


def load_online_detector(run_id: str, tracking_uri: str | None, scratch: Path) -> tuple[OnlineDetector, Any, Any]:
    """The run's detector behind an `OnlineDetector`, the run's config and its model card."""
    from twinids.training.detector import require_streamable

    run = load_run(run_id, tracking_uri, scratch)
    rule = require_streamable(run.detector, str(run.cfg.model.name)).window_rule()
    online = OnlineDetector(rule, run.data.encoder, run.data.window, run.data.class_names, run.devices)
    return online, run.cfg, run.card


def open_online_detector(run_or_bundle: str, tracking_uri: str | None, scratch: Path) -> tuple[OnlineDetector, Any]:
    """An `OnlineDetector` from a run (id or checkpoint) or an exported bundle folder, and the run's config (None for
    a bundle: it holds no config, only what the stream needs)."""
    path = Path(run_or_bundle)
    if path.is_dir() or ("/" in run_or_bundle and not path.suffix):  # a run id never holds a slash
        from twinids.stream.bundle import load_bundle

        return load_bundle(path).online_detector(), None
    import torch

    torch.set_num_threads(1)  # one small window at a time: intra-op threads only add their synchronisation
    online, cfg, _ = load_online_detector(run_or_bundle, tracking_uri, scratch)
    return online, cfg


def run_stream(
    online: OnlineDetector,
    batches: Iterable[list[tuple[float, dict[str, Any]]]],
    sinks: Sequence[Any],
    *,
    every_window: bool = False,
    max_readings: int | None = None,
) -> StreamSummary:
    """Push batches of (arrival, reading) through `online`; write each alarm (each decision with `every_window`).

    Ends with the readings, after `max_readings`, or quietly when stdout's reader goes away (`| head`). Latency is
    from a reading's arrival to its window's decision.
    """
    from twinids.stream.sinks import ReaderGone

    taken = skipped = decided = alerts = 0
    latencies: list[float] = []
    try:
        for batch in batches:
            if max_readings is not None:
                batch = batch[: max_readings - taken - skipped]
            outcomes = online.push_many([reading for _, reading in batch])
            now = time.perf_counter()
            for (arrived, _), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BadReading):
                    skipped += 1
                    log.warning("skipped: %s", outcome)
                    continue
                taken += 1
                if outcome is None:
                    continue
                latencies.append(now - arrived)
                decided += 1
                if outcome.alarm or every_window:
                    line = outcome.to_json()
                    for sink in sinks:
                        sink.write(line)
                    alerts += 1
            if max_readings is not None and taken + skipped >= max_readings:
                break
    except ReaderGone:
        pass
    p50, p99 = (float(np.percentile(latencies, q)) * 1e3 for q in (50, 99)) if latencies else (float("nan"),) * 2
    return StreamSummary(taken, skipped, decided, alerts, p50, p99)


def readings_from(
    source: str, cfg: Any, overrides: Sequence[str], online: OnlineDetector, realtime: bool, speed: float
) -> tuple[Iterable[list[tuple[float, dict[str, Any]]]], Any]:
    """The batches of readings `--source` names, and what to close when done (an MQTT subscription; else None)."""
    from omegaconf import OmegaConf

    from twinids.stream.mqtt import MQTT_SCHEME, MqttAddress
    from twinids.stream.sources import (
        SIMULATOR,
        MqttReadings,
        batches,
        file_readings,
        paced,
        simulator_readings,
    )
    from twinids.twin.link import SIMULATOR as SIMULATOR_TARGET

    if overrides and source != SIMULATOR:
        raise TwinIDSError(f"overrides ({' '.join(overrides)}) set the simulator: they need --source {SIMULATOR}")
    if source.startswith(MQTT_SCHEME + "://"):
        subscription = MqttReadings(MqttAddress.parse(source, "--source"))
        return subscription, subscription
    if source == SIMULATOR:
        bad = [item for item in overrides if not item.startswith("data.source.")]
        if bad:
            raise TwinIDSError(f"--source {SIMULATOR} takes data.source.* overrides only; got {bad[0]!r}")
        if cfg is None:
            raise TwinIDSError(
                f"--source {SIMULATOR} simulates the run's data config, which an exported bundle does not hold: detect "
                "on the run itself, or give the bundle a file or mqtt:// source"
            )
        if cfg.data.source.get("_target_") != SIMULATOR_TARGET:
            raise TwinIDSError(f"--source {SIMULATOR}: run's data '{cfg.data.name}' is not the simulator's")
        source_cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides))).data.source
        readings = simulator_readings(source_cfg)
    else:
        readings = file_readings(Path(source), online.encoder.columns, realtime)
    return (batches(paced(readings, speed), size=1) if realtime else batches(readings)), None


def detect(
    run_id: str,
    source: str,
    overrides: Sequence[str] = (),
    *,
    out: Path | None = None,
    publish: str | None = None,
    every_window: bool = False,
    realtime: bool = False,
    speed: float = 1.0,
    max_readings: int | None = None,
    tracking_uri: str | None = None,
) -> StreamSummary:
    """Score a stream with a trained run's detector (or its exported bundle) until the stream ends, `max_readings`,
    or a signal."""
    from twinids.stream.sinks import open_sinks
    from twinids.tracking.run import temporary_directory

    if speed <= 0:
        raise TwinIDSError(f"--speed must be positive; got {speed}")
    if max_readings is not None and max_readings < 1:
        raise TwinIDSError(f"--max-readings must be at least 1; got {max_readings}")
    _log_to_stderr()
    with temporary_directory() as scratch:
        online, cfg = open_online_detector(run_id, tracking_uri, Path(scratch))
    readings, subscription = readings_from(source, cfg, overrides, online, realtime, speed)
    sinks = []
    try:
        sinks = open_sinks(out, publish)
        summary = run_stream(online, readings, sinks, every_window=every_window, max_readings=max_readings)
    finally:
        for sink in sinks:
            sink.close()
        if subscription is not None:
            subscription.close()
    log.info(summary.line())
    return summary


def _log_to_stderr() -> None:
    """Skipped readings, broker events and the summary as plain lines on stderr (stdout holds alerts only)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
