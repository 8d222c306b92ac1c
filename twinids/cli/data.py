"""`twinids data ...`: write simulator data to disk, list and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Datasets: simulate, list, inspect.", no_args_is_help=True)
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("simulate", context_settings=CONTEXT)
def simulate_command(
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    overrides: list[str] = typer.Argument(None, help="Overrides of the simulator, e.g. data.source.n_steps=5000"),
) -> None:
    """Write the built-in digital twin simulator's telemetry (as `data=synthetic_twin` sees it) to a CSV file."""
    from hydra.utils import instantiate

    from twinids.config import compose
    from twinids.errors import TwinIDSError

    if out.suffix.lower() != ".csv":
        raise TwinIDSError(f"--out must name a .csv file, got '{out}'")
    cfg = compose(["data=synthetic_twin", *(overrides or [])])
    frame = instantiate(cfg.data.source)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    frame.to_csv(partial, index=False)
    partial.replace(out)  # never leave a half-written file under the requested name
    typer.echo(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {out}")
