"""`twinids data ...`: write simulator data to disk, list and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Datasets: simulate, list, inspect, audit.", no_args_is_help=True, rich_markup_mode=None)
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("simulate", context_settings=CONTEXT)
def simulate_command(
    out: Path = typer.Option(None, "--out", help="CSV file to write."),
    publish: str = typer.Option(None, "--publish", help="Publish each reading as JSON to mqtt://host:port/topic."),
    per_role: bool = typer.Option(
        False, "--per-role", help="With --publish: one topic per role of data.views (<topic>/<role>), its columns only."
    ),
    realtime: bool = typer.Option(False, "--realtime", help="With --publish: at the readings' own pace."),
    speed: float = typer.Option(1.0, "--speed", help="With --realtime: this many times faster."),
    overrides: list[str] = typer.Argument(None, help="Overrides of the simulator, e.g. data.source.n_steps=5000"),
) -> None:
    """Write the built-in digital twin simulator's telemetry (as `data=synthetic_twin` sees it) to a CSV file,
    or publish it reading by reading (every device interleaved in time order) to an MQTT topic."""
    from omegaconf import OmegaConf

    from twinids.config import compose
    from twinids.data.registry import load_frame
    from twinids.errors import TwinIDSError

    if (out is None) == (publish is None):
        raise TwinIDSError("give one of --out FILE.csv and --publish mqtt://host:port/topic")
    if out is not None and out.suffix.lower() != ".csv":
        raise TwinIDSError(f"--out must name a .csv file, got '{out}'")
    if speed <= 0:
        raise TwinIDSError(f"--speed must be positive; got {speed}")
    if per_role and publish is None:
        raise TwinIDSError("--per-role publishes one topic per role: it needs --publish mqtt://host:port/topic")
    cfg = compose(["data=synthetic_twin", *(overrides or [])])
    frame = load_frame(cfg.data)
    if publish is not None:
        from twinids.stream.publish import publish_frame

        roles = OmegaConf.to_container(cfg.data.views) if per_role else None
        if roles == {}:
            raise TwinIDSError("--per-role: data.views names no roles")
        sent = publish_frame(frame, publish, roles=roles, realtime=realtime, speed=speed)
        if roles is None:
            typer.echo(f"published {sent} readings to {publish}")
        else:
            typer.echo(f"published {len(frame)} readings as {sent} messages to {publish}/<role> ({', '.join(roles)})")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    frame.to_csv(partial, index=False)
    partial.replace(out)  # never leave a half-written file under the requested name
    typer.echo(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {out}")


@app.command("list")
def list_command() -> None:
    """List the datasets that `data=<name>` can select, with their card."""
    from twinids.data.registry import dataset_names

    for name in dataset_names():
        typer.echo(f"{name:16s} {_first_comment(name)}")


@app.command("inspect", context_settings=CONTEXT)
def inspect_command(
    dataset: str = typer.Argument(..., help="Dataset name (see `twinids data list`)."),
    overrides: list[str] = typer.Argument(None, help="Overrides, e.g. data.window=10 data.split.method=by_device"),
) -> None:
    """Rows, features, windows and class balance per split, as training would see them."""
    from rich.console import Console
    from rich.table import Table

    from twinids.config import compose
    from twinids.data.summary import summarize

    summary = summarize(compose([f"data={dataset}", *(overrides or [])]).data)
    console = Console()
    console.print(
        f"{summary.name}: {summary.rows} rows, {len(summary.raw_features)} raw features "
        f"({summary.encoded_features} encoded), window {summary.window}",
        highlight=False,
    )
    table = Table()
    table.add_column("split")
    table.add_column("devices")
    table.add_column("windows", justify="right")
    for name in summary.class_names:
        table.add_column(name, justify="right")
    for split, count in summary.windows.items():
        counts = summary.class_counts[split]
        shares = [f"{c} ({c / max(count, 1):.1%})" for c in counts]
        table.add_row(split, ", ".join(summary.devices[split]), str(count), *shares)
    console.print(table)


def _first_comment(name: str) -> str:
    from twinids.config import config_file

    path = config_file("data", name)  # the package's file, or the user's own from the config search path
    first = path.read_text().splitlines()[:1] if path else []
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""


@app.command("audit", context_settings=CONTEXT)
def audit_command(
    dataset: str = typer.Argument(..., help="Dataset name (see `twinids data list`)."),
    overrides: list[str] = typer.Argument(None, help="Overrides of the dataset config, e.g. data.root=..."),
    raw: bool = typer.Option(False, "--raw", help="Audit the files as published instead of the loader's output."),
    threshold: float = typer.Option(0.98, help="Macro-F1 of one feature alone that counts as a leak."),
    top: int = typer.Option(15, help="How many of the most predictive features to show."),
) -> None:
    """Check a dataset for label leaks; exits 1 when one feature or formatting trace nearly separates the classes."""
    from rich.console import Console

    from twinids.config import compose
    from twinids.data.audit import audit_frame, raw_frame
    from twinids.data.registry import load_frame

    data_cfg = compose([f"data={dataset}", *(overrides or [])]).data
    frame = raw_frame(dataset, str(data_cfg.source.root)) if raw else load_frame(data_cfg)
    report = audit_frame(frame, threshold=threshold)
    console = Console()
    console.print(report.to_frame().head(top).to_string(index=False), highlight=False)
    for line in report.findings:
        console.print(line, highlight=False, soft_wrap=True)
    verdict = "PASSED" if report.passed else "FAILED: a single feature or formatting trace gives the label away"
    console.print(f"audit {'raw files' if raw else 'loaded frame'} of {dataset}: {verdict}", highlight=False)
    if not report.passed:
        raise typer.Exit(code=1)
