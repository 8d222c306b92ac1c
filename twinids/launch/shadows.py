"""The audit behind `twinids audit`: for `attack=lira` it first trains the shadow models, as one sweep."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.adversary.audit import AuditResult, audit_membership, read_audit_settings
from twinids.errors import TwinIDSError
from twinids.launch.sweep_jobs import FAILED, KILLED, JobOutcome

AUDIT_TARGET_TAG = "twinids.audit.target"
UNTRAINED = ("tracking", "paths", "run_name")  # where runs are written, not what trains


def retraining_drift(trained: dict[str, Any], recomposed: DictConfig) -> list[str]:
    """Dotted keys that training again from the recorded overrides would set otherwise than the run had them.

    Where runs are written is not drift; neither is a key configs/ gained since that is null (off), nor a node
    switched off in both (INERT_WHEN_OFF: an audit without canaries), as in the config hash. A key gained since with
    a value, or one the run had and configs/ lost, is.
    """
    from twinids.tracking.config_hash import switched_off
    from twinids.training.evaluate import config_drift, flat_settings

    had, now = flat_settings(trained), flat_settings(OmegaConf.to_container(recomposed, resolve=True))
    inert = switched_off(had) & switched_off(now)
    return [
        key
        for key in config_drift(trained, recomposed, [])
        if key.split(".")[0] not in UNTRAINED
        and (key in had or now.get(key) is not None)
        and not any(key == node or key.startswith(node + ".") for node in inert)
    ]


def audit(
    run_id: str,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    parallel_jobs: int = 1,
    on_shadow: Callable[[JobOutcome], None] = lambda outcome: None,
) -> AuditResult:
    """Run the membership-inference audit `overrides` of configs/audit.yaml ask for against a training run.

    For `attack=lira`, the shadows are the run's own training overrides plus `data.train_half=0..shadows-1`,
    run as a sweep into the same store (child runs of a parent tagged with the audited run): a later audit of a
    run with the same config reuses them, as any sweep reuses finished jobs.
    """
    from twinids.config import compose
    from twinids.launch.sweep import SweepSettings, run_sweep
    from twinids.tracking.queries import download_checkpoint
    from twinids.tracking.run import temporary_directory
    from twinids.training.checkpoint_io import read_card
    from twinids.training.job import quiet_tracking

    quiet_tracking()
    settings = read_audit_settings(overrides)
    if settings.attack != "lira":
        return audit_membership(run_id, overrides, tracking_uri)
    with temporary_directory() as scratch:
        card = read_card(download_checkpoint(run_id, Path(scratch), tracking_uri))
    trained_with = card.overrides
    drift = retraining_drift(card.config, compose(trained_with))
    if drift:
        raise TwinIDSError(
            f"run '{run_id}' cannot be trained again from its overrides ({' '.join(trained_with) or 'none'}): "
            f"{', '.join(drift[:3])} would differ (configs/ changed since, or it was trained without recording its "
            "overrides), so shadows would train another detector"
        )
    halves = ",".join(str(half) for half in range(settings.shadows))
    sweep = SweepSettings(
        [*trained_with, f"data.train_half={halves}"],
        parallel_jobs=parallel_jobs,
        tracking_uri=tracking_uri,
        tags={AUDIT_TARGET_TAG: run_id},
    )
    outcomes = run_sweep(sweep, on_shadow).outcomes
    failed = [outcome for outcome in outcomes if outcome.status in (FAILED, KILLED) or outcome.run_id is None]
    if failed:
        raise TwinIDSError(f"{len(failed)} of {len(outcomes)} shadow models did not train: {failed[0].message}")
    return audit_membership(run_id, overrides, tracking_uri, [str(outcome.run_id) for outcome in outcomes])
