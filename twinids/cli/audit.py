"""`twinids audit RUN_ID [OVERRIDES]`: membership inference against a trained detector."""

from __future__ import annotations

import typer


def audit_command(
    run_id: str = typer.Argument(..., help="The MLflow run id of a training run."),
    overrides: list[str] = typer.Argument(None, help="Overrides of configs/audit.yaml, e.g. attack=lira shadows=8."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Shadow models trained at once (attack=lira)."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Attack a trained detector with membership inference and add the figures to its run (audit/<attack>/mia_*)."""
    from twinids.launch.shadows import audit

    result = audit(run_id, list(overrides or []), tracking_uri, jobs, lambda outcome: print(outcome.line()))
    from twinids.cli.output import print_metrics

    print_metrics(
        f"membership inference — run {run_id}",
        result.metrics,
        {"members": str(result.members), "non-members": str(result.non_members)},
    )
