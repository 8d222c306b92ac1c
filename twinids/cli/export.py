"""`twinids export RUN_ID --format onnx`: a trained detector as a bundle for onnxruntime (`twinids detect` runs it)."""

from __future__ import annotations

from pathlib import Path

import typer


def export_command(
    run_id: str = typer.Argument(..., help="The MLflow run id of a training run (or its checkpoint file)."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx (the graph for onnxruntime)."),
    out: Path = typer.Option(None, "--out", help="The bundle folder to write (new or empty; default: exports/<run>)."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Write the run's detector (model.onnx: net and scorer) and what a stream needs (bundle.json) to one folder."""
    from twinids.stream.export import export_run

    folder = export_run(run_id, out, fmt, tracking_uri)
    typer.echo(str(folder))
