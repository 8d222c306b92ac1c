"""`evaluate(source)`: re-test a trained detector (MLflow run id or checkpoint file) and log a new run."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError
from twinids.training.job import JobResult


def evaluate(
    source: str,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
) -> JobResult:
    """Evaluate a trained detector on the test split of the data its config describes.

    The model and data are rebuilt from the config stored in the checkpoint; with overrides the config is
    recomposed from the run's original overrides followed by the new ones. A new run is logged, tagged
    with the source run id; for a DP-trained model it also carries the ε and δ that training spent.
    """
    from twinids.config import compose
    from twinids.data.registry import build_windows
    from twinids.data.views import check_same_view
    from twinids.tracking.queries import download_checkpoint
    from twinids.tracking.run import start_run, temporary_directory
    from twinids.training.checkpoint_io import read_card
    from twinids.training.detector import JobContext, make_detector
    from twinids.training.job import (
        job_tags,
        log_confusion,
        log_privacy,
        prediction_spread,
        provenance,
        quiet_libraries,
        quiet_tracking,
        unseen_attack_recall,
    )

    quiet_tracking()
    with temporary_directory() as scratch:
        path = Path(source)
        from_file = path.exists() or bool(path.suffix)  # run ids have no dot; anything with a suffix is a file
        checkpoint = path if from_file else download_checkpoint(source, Path(scratch), tracking_uri)
        card = read_card(checkpoint)
        refuse_training_overrides(overrides, card.privacy)
        cfg = compose([*card.overrides, *overrides]) if overrides else OmegaConf.create(card.config)
        if overrides and card.config.get("transfer", {}).get("plan") is not None:
            cfg.transfer.plan = card.config["transfer"]["plan"]  # the architecture the checkpoint was trained as
        for key in config_drift(card.config, cfg, overrides)[:5]:
            print(f"warning: {key} differs from the trained run's config (configs/ changed since?)", file=sys.stderr)
        check_same_view(card.config["data"], cfg.data, f"run {card.run_id or checkpoint}")
        trained = OmegaConf.create(card.config).data
        # other data is read through the run's own encoder (fitted on its training rows), as its detector was trained
        encoder = None if cfg.data == trained else build_windows(trained, evaluated_splits=()).encoder
        data = build_windows(cfg.data, evaluated_splits=("test",), encoder=encoder)  # reads no global RNG
        check_compatible(card.feature_names, card.class_names, data.feature_names, data.class_names)

        import pytorch_lightning as pl  # slow: only once the checkpoint, config and data are known to fit

        quiet_libraries()
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        detector = make_detector(cfg, data, training=False)
        detector.load(checkpoint)
        run_tags = {
            **job_tags(cfg, "eval", card.privacy),
            **provenance(cfg, data),
            "twinids.source_run_id": card.run_id,
            **(tags or {}),
        }
        with start_run(cfg.tracking.mlflow_experiment, tracking_uri or cfg.tracking.uri, None, run_tags) as run:
            run.log_config(cfg, [*card.overrides, *overrides])
            began = time.perf_counter()
            report = detector.test(data, JobContext(run, card, Path(scratch)))
            tested = time.perf_counter()
            log_privacy(run, card.privacy)
            log_confusion(run, report.confusion, data.class_names)
            spread, single_class = prediction_spread(report.confusion, data.class_names)
            unseen, unseen_types = unseen_attack_recall(report.metrics, data)
            run.log_metrics({**spread, **unseen})
            run.set_tags({**single_class, **unseen_types})
    return JobResult(
        {**report.metrics, **spread, **unseen},
        run.run_id,
        checkpoint,
        data.class_names,
        report.confusion,
        card.privacy,
        {"test_s": tested - began},
    )


TRAINED_GROUPS = ("privacy", "transfer")  # what training did; a checkpoint cannot be re-evaluated as another


def refuse_training_overrides(overrides: Sequence[str], privacy: Mapping[str, Any] | None) -> None:
    """Refuse overrides of what training did (privacy, transfer): eval would log claims the checkpoint never made."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.split(".", 1)[0] in TRAINED_GROUPS:
            spent = "no privacy" if privacy is None else f"ε = {float(privacy['epsilon']):.4g}"
            raise TwinIDSError(
                f"eval cannot change {key}: privacy and transfer are how the checkpoint was trained (it spent "
                f"{spent}, which the eval run records); train a new run to change them"
            )


def config_drift(trained: dict[str, Any], cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """Keys whose value in a recomposed config differs from the trained run's, outside what overrides touch."""
    touched = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    before = _flatten(trained)
    after = _flatten(OmegaConf.to_container(cfg, resolve=True))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return sorted(k for k in changed if not any(k == t or k.startswith(t + ".") for t in touched))


def flat_settings(tree: Any) -> dict[str, Any]:
    """A nested config as one mapping of dotted keys (`data.window`) to values."""
    return _flatten(tree)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, child in tree.items() for k, v in _flatten(child, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def check_compatible(
    trained_features: list[str], trained_classes: list[str], features: list[str], classes: list[str]
) -> None:
    """Refuse data whose encoded features or classes differ from what the checkpoint was trained on."""
    if trained_features and trained_features != features:
        missing = sorted(set(trained_features) - set(features))[:5]
        raise TwinIDSError(
            f"the checkpoint's model takes {len(trained_features)} features per step but this data has "
            f"{len(features)} (or in another order); missing e.g. {missing}; evaluate on data with the "
            "same feature set"
        )
    if trained_classes != classes:
        raise TwinIDSError(f"the checkpoint predicts classes {trained_classes} but this data has {classes}")
