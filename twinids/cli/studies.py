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
    from twinids.results.compare import compare_runs
    from twinids.results.table_format import format_for, print_table, render, write_table
    from twinids.results.tracked_runs import RunSelection, configured_experiment, load_runs, parse_tag_filters
    from twinids.tracking.store import resolve_tracking_uri

    if plot is not None:  # a name it cannot write is refused before anything is read or printed
        from twinids.results.comparison_plot import plot_paths

        plot_paths(plot)
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
        from twinids.results.comparison_plot import plot_metric

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
    from twinids.results.tracked_runs import configured_experiment
    from twinids.tracking.dashboard import start_dashboard
    from twinids.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, create_folder=False)  # the dashboard opens a store, never makes one
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


SWEPT_COMMANDS = ("train", "federate")


def sweep_command(
    overrides: list[str] = typer.Argument(
        None, help="Hydra overrides with sweeps: model=lstm,random_forest seed=range(3)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the jobs the sweep expands to; run nothing."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Jobs run at once, each with its share of the cores."),
    launcher: str = typer.Option(
        "pool", "--launcher", help="pool (worker processes here), local or debug (submitit), slurm (submitit)."
    ),
    force: bool = typer.Option(False, "--force", help="Run every job, even those a finished run already holds."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
    partition: str = typer.Option(None, "--partition", help="SLURM: partition (default: the cluster's)."),
    timeout_min: int = typer.Option(60, "--timeout-min", help="SLURM: time limit of each job, minutes."),
    cpus: int = typer.Option(2, "--cpus", help="SLURM: CPUs per job (its torch threads)."),
    mem_gb: float = typer.Option(None, "--mem-gb", help="SLURM: memory per job, GB (default: the cluster's)."),
    gpus: int = typer.Option(0, "--gpus", help="SLURM: GPUs per job."),
    submitit_folder: Path = typer.Option(
        Path("submitit"), "--submitit-folder", help="local/slurm: where submitit writes job files and logs."
    ),
    command: str = typer.Option("train", "--command", help="What each job runs: train, or federate."),
) -> None:
    """Run every job of a sweep as a child of one MLflow parent run; jobs a finished run holds are skipped."""
    from twinids.errors import TwinIDSError
    from twinids.launch.sweep_plan import expand_sweep

    if dry_run:
        planned = expand_sweep(overrides or [])
        width = len(str(len(planned)))
        for number, job in enumerate(planned, 1):
            typer.echo(f"{number:>{width}}  {' '.join(job)}")
        typer.echo(f"{len(planned)} job{'s' if len(planned) != 1 else ''}")
        return
    from twinids.launch.submitit_launcher import SlurmSettings
    from twinids.launch.sweep import SweepSettings, run_sweep

    if command not in SWEPT_COMMANDS:
        raise TwinIDSError(f"--command must be one of {list(SWEPT_COMMANDS)}; got {command!r}")
    slurm = SlurmSettings(partition, timeout_min, cpus, mem_gb, gpus, submitit_folder)
    settings = SweepSettings(
        overrides or [], jobs, launcher, force, tracking_uri, slurm, submitit_folder, command=command
    )
    summary = run_sweep(settings, lambda outcome: typer.echo(outcome.line()))
    typer.echo(summary.line())
    failed = summary.counts()["FAILED"]
    if failed:
        error = TwinIDSError(f"{failed} of {len(summary.outcomes)} sweep jobs failed (their lines above say why)")
        error.exit_code = 1
        raise error


def tune_command(
    search: str = typer.Argument(..., help="A search space: configs/search/<SEARCH>.yaml (e.g. lstm)."),
    overrides: list[str] = typer.Argument(None, help="Fixed overrides for every trial, e.g. data=nsl_kdd"),
    n_trials: int = typer.Option(None, "--n-trials", help="Trials the study should hold (default: the space's)."),
    study: str = typer.Option(None, "--study", help="Study name (default: <search>-<hash of overrides and space>)."),
    storage: str = typer.Option(None, "--storage", help="Optuna storage (default: sqlite:///mlruns/optuna.db)."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Stop poor neural trials early (median pruner)."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Search hyper-parameters with Optuna; trials are child runs of one parent; a re-run resumes the study."""
    from twinids.launch.tune import TuneSettings, run_tune

    settings = TuneSettings(search, overrides or [], n_trials, study, storage, tracking_uri, prune)
    summary = run_tune(settings, lambda trial: typer.echo(trial.line()))
    typer.echo(f"study {summary.study_name} in {summary.storage} (parent run {summary.parent_run_id})")
    if summary.best_value is None:
        typer.echo("no trial has completed yet")
        return
    typer.echo(f"best {summary.metric} = {summary.best_value:.4f}; train it with:")
    typer.echo("twinids train " + " ".join(summary.best_overrides))


def reproduce_command(
    table: str = typer.Argument(None, help="A table: experiments/<TABLE>.yaml (see --list)."),
    overrides: list[str] = typer.Argument(None, help="Overrides added to every job, e.g. data.root=/data"),
    quick: bool = typer.Option(False, "--quick", help="The table's quick variant (minutes; smoke settings)."),
    list_tables: bool = typer.Option(False, "--list", help="List the tables and exit."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Jobs run at once."),
    launcher: str = typer.Option("pool", "--launcher", help="pool, local, debug or slurm (as for sweep)."),
    force: bool = typer.Option(False, "--force", help="Run every job again instead of reusing finished runs."),
    out: Path = typer.Option(None, "--out", help="Folder for the results (default: experiments/results)."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help=TRACKING_URI_HELP),
) -> None:
    """Run what a table's sweeps miss, then write it as Markdown, CSV and LaTeX (and its figure) with provenance."""
    import shlex

    from twinids.errors import TwinIDSError
    from twinids.launch.reproduce import ReproduceSettings, reproduce_table
    from twinids.results.table_spec import load_table, table_names, tables_dir

    folder = tables_dir()
    if list_tables:
        for name in table_names(folder):
            spec = load_table(name, folder=folder)
            typer.echo(f"{name:<12} {spec.caption}")
        return
    if not table:
        raise TwinIDSError("name a table (twinids reproduce TABLE); `twinids reproduce --list` shows them")
    spec = load_table(table, quick, folder)
    command = "twinids " + shlex.join(["reproduce", table, *(["--quick"] if quick else []), *(overrides or [])])
    settings = ReproduceSettings(overrides or [], jobs, launcher, force, tracking_uri, command)
    result = reproduce_table(
        spec, settings, out or folder / "results", lambda outcome: typer.echo(outcome.line()), typer.echo
    )
    for summary in result.summaries:
        typer.echo(summary.line())
    typer.echo("wrote " + ", ".join(str(path) for path in result.written))
    if result.failed():
        error = TwinIDSError(f"{result.failed()} jobs of table '{table}' failed; their cells are missing")
        error.exit_code = 1
        raise error
