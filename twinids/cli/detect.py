"""`twinids detect RUN_ID|BUNDLE --source SRC`: score a live stream with a trained detector, alerts as JSON lines."""

from __future__ import annotations

from pathlib import Path

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def detect_command(
    run_id: str = typer.Argument(
        ..., help="The MLflow run id of a training run, its checkpoint file, or a bundle folder from `twinids export`."
    ),
    overrides: list[str] = typer.Argument(None, help="For --source simulator: its settings, e.g. data.source.seed=7."),
    source: str = typer.Option(
        ...,
        "--source",
        help="A CSV/Parquet file (e.g. from `twinids data simulate`), simulator, or mqtt://host:port/topic.",
    ),
    out: Path = typer.Option(None, "--out", help="Append alerts to this file (JSON lines) instead of stdout."),
    publish: str = typer.Option(None, "--publish", help="Publish alerts to mqtt://host:port/topic instead of stdout."),
    every_window: bool = typer.Option(False, "--every-window", help="Write every decision, not only the alarms."),
    realtime: bool = typer.Option(False, "--realtime", help="Play a file or the simulator at its own timestamps."),
    speed: float = typer.Option(1.0, "--speed", help="With --realtime: this many times faster."),
    max_readings: int = typer.Option(None, "--max-readings", help="Stop after this many readings."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Score each arriving reading's window with a trained detector; one JSON object per alert on stdout."""
    from twinids.stream.detect_job import detect

    detect(
        run_id,
        source,
        overrides or [],
        out=out,
        publish=publish,
        every_window=every_window,
        realtime=realtime,
        speed=speed,
        max_readings=max_readings,
        tracking_uri=tracking_uri,
    )
