"""`twinids federate [OVERRIDES]`: federated training over Flower; prints the global model's metrics and run id."""

from __future__ import annotations

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def federate_command(
    overrides: list[str] = typer.Argument(
        None, help="Hydra overrides, e.g. federation.rounds=5 federation.client_dp.target_epsilon=3 privacy=dp"
    ),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
) -> None:
    """Train one detector across clients (plants, devices) that keep their data, with Flower; log it to MLflow."""
    from twinids.config import compose

    overrides = list(overrides or [])
    if tracking_uri:
        overrides.append(f"tracking.uri={tracking_uri}")
    try:
        import flwr  # noqa: F401
    except ImportError:
        from twinids.errors import TwinIDSError

        raise TwinIDSError("twinids federate needs Flower: pip install 'twinids[federated]'") from None
    from twinids.federation.federate_job import federate
    from twinids.interrupts import JobInterrupted

    try:
        result = federate(compose(overrides, config_name="federate"), overrides)
    except (KeyboardInterrupt, JobInterrupted) as stop:
        # The runs are ended KILLED by now. Flower's simulation leaves its ServerApp thread waiting on clients that
        # are gone (until the round timeout), and Python would wait for it before exiting: leave at once instead.
        import os
        import sys

        code = stop.exit_code if isinstance(stop, JobInterrupted) else 130
        print(f"interrupted by {stop}" if isinstance(stop, JobInterrupted) else "interrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    from twinids.cli.output import print_metrics

    shown = {k: v for k, v in result.metrics.items() if k.startswith(("test/", "privacy/"))}
    print_metrics(
        "federated detector (last round)", shown, {"run id": result.run_id, "time": f"{result.seconds:.0f} s"}
    )
