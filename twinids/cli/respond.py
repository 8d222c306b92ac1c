"""`twinids respond RUN_ID [OVERRIDES]`: a detector and a playbook defending the simulated plant, impact measured."""

from __future__ import annotations

import typer


def respond_command(
    run_id: str = typer.Argument(..., help="The MLflow run id of a training run on the simulator."),
    overrides: list[str] = typer.Argument(
        None, help="Overrides of configs/respond.yaml, e.g. attack=command_injection playbook=my_playbook."
    ),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Run replicas of the run's plant attacked, undefended and defended by its detector and a playbook."""
    import logging
    import sys

    from twinids.response.respond_job import respond_run

    tickets = logging.getLogger("twinids.respond")
    if not tickets.handlers:  # operator tickets as plain lines on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        tickets.addHandler(handler)
        tickets.setLevel(logging.INFO)
        tickets.propagate = False
    result = respond_run(run_id, overrides or [], tracking_uri)
    from twinids.cli.output import print_metrics

    shown = {key: value for key, value in result.metrics.items() if "/triggers/" not in key}
    print_metrics(f"response with detector run {run_id}", shown, {"run id": result.run_id, "detector": run_id})
