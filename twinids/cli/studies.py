"""`twinids compare`, `twinids dashboard` and `twinids sweep --dry-run`: studies over many tracked runs."""

from __future__ import annotations

from pathlib import Path

import typer

SWEEP_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
TRACKING_URI_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)."
EXPERIMENT_HELP = "MLflow experiment (default: the config's tracking.mlflow_experiment)."


def compare_command(
    experiment: str = typer.Option(None, "--experiment", "-e", help=EXPERIMENT_HELP),
    parent: str = typer.Option(None, "--parent", help="Only the child runs of this sweep's parent run id."),
    tag: list[str] = typer.Option(None, "--tag", help="Only runs with this tag, key=value (repeatable)."),
    filter_string: str = typer.Option(None, "--filter", help="A raw MLflow search filter, ANDed with the others."),
    by: str = typer.Option(
        None,
        "--by",
        help="Config keys to group by, comma-separated, e.g. model.name,privacy.target_epsilon "
        "(default: model, dataset and every other key that varies, seeds aside).",
    ),
    metrics: str = typer.Option(
        None,
        "--metrics",
        help="Metrics to aggregate, comma-separated (default: test/f1_macro,test/accuracy,test/auroc,test/fpr).",
    ),
    fmt: str = typer.Option(None, "--format", help="md, csv or latex instead of the terminal table."),
    out: Path = typer.Option(None, "--out", help="Write the table to this file (format: --format or the extension)."),
    plot: Path = typer.Option(None, "--plot", help="Draw the first metric against --x into this PNG (and an SVG)."),
    x: str = typer.Option("privacy.target_epsilon", "--x", help="The plot's x axis: a numeric config key."),
    mix_data: bool = typer.Option(False, "--mix-data", help="Aggregate runs made from different data anyway."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Aggregate tracked runs over seeds (mean ± std, run count) grouped by config keys, as a table or plot."""
    from twinids.studies.compare import compare_runs
    from twinids.studies.table_format import format_for, print_table, render, write_table
    from twinids.studies.tracked_runs import RunSelection, configured_experiment, load_runs, parse_tag_filters
    from twinids.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if not parent:
        experiment = experiment or configured_experiment()
    selection = RunSelection(experiment, parent, parse_tag_filters(tag or []), filter_string)
    runs = load_runs(selection, uri)
    keys, names = _listed(by), _listed(metrics)
    comparison = compare_runs(runs, keys, names, mix_data)
    if out is not None:
        write_table(comparison, out, fmt)
        typer.echo(f"wrote {out}")
    elif fmt is not None:
        typer.echo(render(comparison, format_for(Path("table"), fmt)), nl=False)
    else:
        where = f"children of run {parent}" if parent else f"experiment '{experiment}'"
        print_table(comparison, f"{comparison.n_runs} runs in {len(comparison.table)} groups — {where}")
    if plot is not None:
        from twinids.studies.comparison_plot import plot_metric

        written = plot_metric(runs, plot, comparison.metrics[0], x, keys, mix_data)
        typer.echo("wrote " + " and ".join(str(path) for path in written))


def _listed(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def dashboard_command(
    experiment: str = typer.Option(None, "--experiment", "-e", help=EXPERIMENT_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(None, "--port", help="Port (default: 5000, or a free one if 5000 is taken; 0: any free)."),
    workers: int = typer.Option(1, "--workers", help="Server worker processes (one serves a single user well)."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Start the MLflow UI on the tracking store and print the address of the experiment's training runs."""
    from twinids.errors import TwinIDSError
    from twinids.studies.dashboard import start_dashboard
    from twinids.studies.tracked_runs import configured_experiment
    from twinids.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    experiment = experiment or configured_experiment()
    dashboard = start_dashboard(uri, experiment, host, port, workers)
    if dashboard.process is None:
        typer.echo(f"the tracking server serves its own UI: {dashboard.url}")
        return
    try:  # Ctrl-C, SIGTERM or SIGHUP: the server is stopped, then the CLI prints one line and exits 128 + signal
        if "#/experiments/" not in dashboard.url:
            typer.echo(f"no experiment '{experiment}' in the store yet; train a run, then reload", err=True)
        typer.echo(f"MLflow dashboard: {dashboard.url}")
        typer.echo(f"(Ctrl-C stops it; server log: {dashboard.log_path})")
        code = dashboard.wait()
    finally:
        dashboard.stop()
    raise TwinIDSError(f"the MLflow server stopped by itself (exit code {code}); see {dashboard.log_path}")


def sweep_command(
    overrides: list[str] = typer.Argument(
        None, help="Hydra overrides with sweeps: model=lstm,random_forest seed=range(3)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the jobs the sweep expands to; run nothing."),
) -> None:
    """Expand sweep overrides (lists, range(), glob()) into the jobs of a sweep; only --dry-run exists yet."""
    from twinids.errors import TwinIDSError
    from twinids.studies.sweep_plan import expand_sweep

    jobs = expand_sweep(overrides or [])
    if not dry_run:
        raise TwinIDSError("sweep execution is not built yet; pass --dry-run to list the jobs it would run")
    width = len(str(len(jobs)))
    for number, job in enumerate(jobs, 1):
        typer.echo(f"{number:>{width}}  {' '.join(job)}")
    typer.echo(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}")
