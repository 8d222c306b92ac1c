"""What train and eval jobs share: their result, their tags, the checks made before a run, quiet libraries."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from twinids.errors import TwinIDSError


@dataclass(frozen=True)
class JobResult:
    """What a train or eval job produced: test metrics, MLflow run id, checkpoint, confusion matrix, timings."""

    metrics: dict[str, float]
    run_id: str
    checkpoint: Path
    class_names: list[str]
    confusion: np.ndarray
    privacy: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def job_tags(cfg: DictConfig, job: str, privacy: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Tags that make runs filterable in the MLflow dashboard and in `compare`."""
    tags = {
        "twinids.job": job,
        "twinids.dataset": str(cfg.data.name),
        "twinids.model": str(cfg.model.name),
        "twinids.privacy": str(cfg.privacy.name),
        "twinids.task": f"{cfg.task}/{cfg.data.classes}",
        "twinids.seed": str(cfg.seed),
    }
    plan = cfg.get("transfer", {}).get("plan")
    if plan is not None:
        tags["twinids.transfer.source_run_id"] = str(plan["source_run_id"])
    if cfg.privacy.name == "dp":
        target = cfg.privacy.get("target_epsilon")
        spent = None if privacy is None else privacy.get("epsilon")
        tags["twinids.epsilon"] = f"{float(target):g}" if target is not None else (f"{spent:.3g}" if spent else "")
    return tags


def provenance(cfg: DictConfig, data: Any) -> dict[str, str]:
    """Tags saying what produced a run: code and library versions, machine, and a fingerprint of its data.

    The fingerprint hashes the files read, or, for generated data, the source's config (which holds its seed).
    """
    from omegaconf import OmegaConf

    from twinids.tracking.provenance import provenance_tags

    source = OmegaConf.to_container(cfg.data.source, resolve=True)
    files = [Path(f) for f in data.source_files]
    return provenance_tags(str(cfg.trainer.get("accelerator", "cpu")), files, None if files else source)


def check_job_settings(cfg: DictConfig) -> None:
    """Settings every job reads before its run exists: the seed, and a writable output folder."""
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TwinIDSError(f"seed must be an integer; got {seed!r}")
    output = Path(str(cfg.paths.output_dir)).resolve()
    existing = next(p for p in (output, *output.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise TwinIDSError(
            f"paths.output_dir={cfg.paths.output_dir} cannot be written ({existing} is not a writable folder); "
            "choose another folder"
        )


def refuse_overrides_without_effect(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse an override inside a node that is switched off (INERT_WHEN_OFF: e.g. `privacy.audit.kind` while
    `privacy.audit.canaries` is 0): it would be accepted and do nothing."""
    from omegaconf import OmegaConf

    from twinids.tracking.config_hash import INERT_WHEN_OFF

    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        for node, switch in INERT_WHEN_OFF.items():
            if (
                key.startswith(f"{node}.")
                and key != f"{node}.{switch}"
                and not OmegaConf.select(cfg, f"{node}.{switch}")
            ):
                value = OmegaConf.select(cfg, f"{node}.{switch}")
                raise TwinIDSError(
                    f"{key} is set, but {node}.{switch} is {'null' if value is None else value}, so nothing reads "
                    f"it; set {node}.{switch} too, or drop the setting"
                )


SINGLE_CLASS_TAG = "twinids.single_class_prediction"


def prediction_spread(confusion: np.ndarray, class_names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """`test/predicted_classes` (how many classes the detector predicted at least once on the test split) and,
    when that is one, a tag naming the class: a detector that answers "normal" to every window (a collapse
    that DP-SGD can cause) must say so, whatever its accuracy."""
    predicted = [name for name, count in zip(class_names, confusion.sum(axis=0), strict=True) if count > 0]
    tags = {SINGLE_CLASS_TAG: predicted[0]} if len(predicted) == 1 else {}
    return {"test/predicted_classes": float(len(predicted))}, tags


UNSEEN_ATTACKS_TAG = "twinids.unseen_attacks"


def unseen_attack_recall(metrics: Mapping[str, float], data: Any) -> tuple[dict[str, float], dict[str, str]]:
    """`test/recall_unseen` and `test/recall_seen`: recall over the test windows of attack types that no training
    window is labelled with (held out with data.holdout_attacks, or new in the dataset's test file) and of the
    others, pooled from the per-type recalls; and a tag listing the unseen types. Nothing when there are none."""
    from twinids.models.metric_names import RECALL_PER_ATTACK

    names = data.attack_names
    trained = set(np.unique(data.attacks["train"]).tolist()) if len(data.starts.get("train", ())) else None
    counts = np.bincount(data.attacks["test"], minlength=len(names))
    pooled: dict[bool, list[float]] = {True: [0.0, 0.0], False: [0.0, 0.0]}  # unseen? -> [recalled, windows]
    for code in range(1, len(names)):
        recall = metrics.get(f"test/{RECALL_PER_ATTACK}/{names[code]}")
        if trained is None or recall is None or not counts[code]:
            continue
        share = pooled[code not in trained]
        share[0] += float(recall) * counts[code]
        share[1] += float(counts[code])
    if not pooled[True][1]:
        return {}, {}
    values = {
        f"test/recall_{kind}": hit / total
        for kind, (hit, total) in (("unseen", pooled[True]), ("seen", pooled[False]))
        if total
    }
    unseen = [names[c] for c in range(1, len(names)) if counts[c] and c not in (trained or set())]
    return values, {UNSEEN_ATTACKS_TAG: ",".join(unseen)}


def log_confusion(run: Any, matrix: np.ndarray, class_names: list[str]) -> None:
    """Log the test confusion matrix as CSV and as a plot."""
    import matplotlib.pyplot as plt

    from twinids.training.figures import confusion_csv, confusion_figure

    run.log_text(confusion_csv(matrix, class_names), "test/confusion_matrix.csv")
    figure = confusion_figure(matrix, class_names, "test confusion matrix")
    run.log_figure(figure, "test/confusion_matrix.png")
    plt.close(figure)


def log_privacy(run: Any, summary: Mapping[str, Any] | None) -> None:
    """The privacy a model's training spent: params `privacy.*` and the final `privacy/epsilon` metric."""
    if summary is None:
        return
    run.log_params({f"privacy.{key}": value for key, value in summary.items()})
    final = {"privacy/epsilon": float(summary["epsilon"]), "privacy/delta": float(summary["delta"])}
    final |= {f"privacy/{key}": float(value) for key, value in summary.items() if key.startswith("epsilon_")}
    run.log_metrics(final, step=int(summary["steps"]))


def quiet_tracking() -> None:
    """Keep MLflow's store set-up lines and progress bars out of the output; cheap, so call it before any store."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def quiet_libraries() -> None:
    """Keep library chatter (device summaries, dataloader hints, metric warnings) out of the command's output."""
    quiet_tracking()
    import pytorch_lightning  # noqa: F401  (its import sets its loggers to INFO; lower them afterwards)

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "mlflow", "opacus"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*LeafSpec.*",
        ".*callbacks used to create the checkpoint need to be provided.*",
        ".*have no `val_dataloader`.*",
        ".*Secure RNG turned off.*",
        ".*Full backward hook is firing.*",
        ".*Using a non-full backward hook.*",
        ".*Optimal order is the largest alpha.*",
        ".*The number of training batches .* is smaller than the logging interval.*",
        ".*Your `IterableDataset` has `__len__` defined.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", module="torchmetrics.*")
