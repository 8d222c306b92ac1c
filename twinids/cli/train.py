"""`twinids train [OVERRIDES]`: compose the config, train, print test metrics, run id and checkpoint."""

from __future__ import annotations

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def train_command(
    overrides: list[str] = typer.Argument(None, help="Hydra overrides, e.g. model=lstm data.window=20 seed=7"),
    cfg: str = typer.Option(None, "--cfg", help="Print the resolved config instead of training ('job')."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: ./mlruns SQLite)."),
    resume: str = typer.Option(
        None, "--resume", help="Continue a stopped training run: its MLflow run id or its last.ckpt file."
    ),
) -> None:
    """Train a detector on the configured data and log the run to MLflow."""
    from twinids.training.resume import resolve_resume

    overrides = list(overrides or [])
    if resume is not None:
        job = resolve_resume(resume, overrides, tracking_uri)
        config, overrides, checkpoint, run_id = job.cfg, job.overrides, job.checkpoint, job.run_id
    else:
        from twinids.config import compose

        if tracking_uri:
            overrides.append(f"tracking.uri={tracking_uri}")
        config, checkpoint, run_id = compose(overrides), None, None
    if cfg is not None:
        from twinids.config import to_yaml
        from twinids.errors import TwinIDSError

        if cfg != "job":
            raise TwinIDSError(f"--cfg takes 'job' (print the composed config); got '{cfg}'")
        typer.echo(to_yaml(config), nl=False)
        return
    from twinids.training.train import train

    result = train(config, overrides, resume=checkpoint, resume_run_id=run_id)
    from twinids.cli.output import print_metrics  # imports torch: only after the job, so mistakes fail fast

    details = {"run id": result.run_id, "checkpoint": str(result.checkpoint)}
    if result.privacy is not None:
        details["privacy"] = f"ε = {result.privacy['epsilon']:.4f} at δ = {result.privacy['delta']:g} " + (
            f"(σ = {result.privacy['noise_multiplier']:.4g}, {result.privacy['steps']} steps)"
        )
    print_metrics(f"test metrics — {config.model.name} on {config.data.name}", result.metrics, details)
