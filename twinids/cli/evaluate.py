"""`twinids eval RUN_ID|CHECKPOINT [OVERRIDES]`: re-test a trained detector and log the result as a new run."""

from __future__ import annotations

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def eval_command(
    source: str = typer.Argument(..., help="An MLflow run id of a training run, or a .ckpt file."),
    overrides: list[str] = typer.Argument(None, help="Hydra overrides applied on the run's config, e.g. data=..."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Evaluate a trained run on its test split (or on other data via overrides)."""
    from twinids.training.evaluate import evaluate

    result = evaluate(source, list(overrides or []), tracking_uri)
    from twinids.cli.output import print_metrics  # imports torch: only after the job, so mistakes fail fast

    print_metrics(
        f"test metrics — evaluation of {source}",
        result.metrics,
        {"run id": result.run_id, "evaluated": source},
    )
