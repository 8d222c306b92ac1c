"""`twinids attack RUN_ID --method replay|iterative|learned --sensors K [OVERRIDES]`: concealment against a detector."""

from __future__ import annotations

import typer

METHODS = ("replay", "iterative", "learned")


def attack_command(
    run_id: str = typer.Argument(..., help="The MLflow run id of a training run."),
    overrides: list[str] = typer.Argument(None, help="Overrides of configs/concealment.yaml, e.g. method.steps=200."),
    method: str = typer.Option(
        None, "--method", help="replay | iterative (white-box) | learned (black-box); default: concealment.yaml's."
    ),
    sensors: str = typer.Option(None, "--sensors", help="Channels the attacker controls: an integer, or all."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Conceal the attacks in a detector's test split and log detection before and after as a new run."""
    from twinids.errors import TwinIDSError

    options = []
    if method is not None:
        if method not in METHODS:
            raise TwinIDSError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
        options.append(f"method={method}")
    if sensors is not None:
        options.append(f"sensors={sensors}")
    from twinids.adversary.attack_job import conceal_run

    result = conceal_run(run_id, [*options, *(overrides or [])], tracking_uri)
    from twinids.cli.output import print_metrics

    shown = {k: v for k, v in result.metrics.items() if k.startswith(("test/", "clean/recall", "clean/f1", "attack/"))}
    print_metrics(
        f"detection after concealment — run {run_id}",
        shown,
        {"run id": result.run_id, "attacked": run_id, "controlled": ", ".join(result.controlled)},
    )
