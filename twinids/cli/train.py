"""`twinids train [OVERRIDES]`: compose the config, train, print test metrics, run id and checkpoint."""

from __future__ import annotations

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def train_command(
    overrides: list[str] = typer.Argument(None, help="Hydra overrides, e.g. model=lstm data.window=20 seed=7"),
    cfg: str = typer.Option(None, "--cfg", help="Print the resolved config instead of training ('job')."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Train a detector on the configured data and log the run to MLflow."""
    from twinids.config import compose, to_yaml
    from twinids.errors import TwinIDSError

    overrides = list(overrides or [])
    if tracking_uri:
        overrides.append(f"tracking.uri={tracking_uri}")
    config = compose(overrides)
    if cfg is not None:
        if cfg not in ("job", "all"):
            raise TwinIDSError(f"--cfg takes 'job' (got '{cfg}')")
        typer.echo(to_yaml(config), nl=False)
        return

    from twinids.cli.output import print_metrics
    from twinids.training.run import train

    result = train(config, overrides)
    print_metrics(
        f"test metrics — {config.model.name} on {config.data.name}",
        result.metrics,
        {"run id": result.run_id, "checkpoint": str(result.checkpoint)},
    )
