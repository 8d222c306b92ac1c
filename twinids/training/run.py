"""`train(cfg)` and `evaluate(source)`: the plain functions behind the CLI, sweeps, reproduction and tests.

Data flows one way: config -> windows -> model -> trainer -> tracker -> metrics returned. User mistakes in
the config or data surface before any MLflow run is created, so nothing half-written is left in the store.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError


@dataclass(frozen=True)
class RunResult:
    """What a train or eval job produced: its test metrics, MLflow run id, checkpoint and confusion matrix."""

    metrics: dict[str, float]
    run_id: str
    checkpoint: Path
    class_names: list[str]
    confusion: np.ndarray


def is_classical(cfg: DictConfig) -> bool:
    """Whether `cfg.model` is a scikit-learn baseline rather than a neural detector."""
    return cfg.model.get("kind", "neural") == "classical"


def train(cfg: DictConfig, overrides: Sequence[str] = ()) -> RunResult:
    """Train a detector as `cfg` describes, test its best checkpoint, and track everything in MLflow."""
    import pytorch_lightning as pl

    from twinids.config import build, require_complete
    from twinids.data.registry import build_windows
    from twinids.tracking.run import CHECKPOINT_ARTIFACT_DIR, start_run
    from twinids.training.checkpoint import make_run_record

    require_complete(cfg)
    quiet_libraries()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = build_windows(cfg.data)
    if is_classical(cfg):
        detector = build(cfg.model.estimator, f"model '{cfg.model.name}'")
        check_estimator_params(detector, str(cfg.model.name))
    else:
        from twinids.training.neural import build_module

        detector = build_module(cfg, data.n_features, data.class_names, data.class_counts("train"))

    with start_run(cfg.tracking.experiment, cfg.tracking.uri, cfg.run_name, run_tags(cfg, "train")) as run:
        run.log_config(cfg, list(overrides))
        run.log_metrics({f"data/{split}_windows": float(len(s)) for split, s in data.starts.items()})
        record = make_run_record(cfg, list(overrides), data.class_names, data.feature_names, run.run_id)
        run_dir = Path(cfg.paths.output_dir).resolve() / run.run_id
        if is_classical(cfg):
            metrics, checkpoint, confusion = _fit_classical(detector, data, run, record, run_dir)
        else:
            from twinids.training.neural import fit_neural

            metrics, checkpoint, confusion = fit_neural(cfg, data, detector, run.logger, record, run_dir)
        log_confusion(run, confusion, data.class_names)
        if cfg.tracking.log_checkpoint:
            run.log_file(checkpoint, CHECKPOINT_ARTIFACT_DIR)
    return RunResult(metrics, run.run_id, checkpoint, data.class_names, confusion)


def evaluate(source: str, overrides: Sequence[str] = (), tracking_uri: str | None = None) -> RunResult:
    """Evaluate a trained run (MLflow run id or checkpoint path) on the data its config describes.

    The model and data are rebuilt from the config stored in the checkpoint; with overrides the config is
    recomposed from the run's original overrides followed by the new ones. A new run is logged, tagged
    with the source run id.
    """
    import pytorch_lightning as pl

    from twinids.config import compose
    from twinids.data.registry import build_windows
    from twinids.tracking.queries import download_checkpoint
    from twinids.tracking.run import start_run, temporary_directory
    from twinids.training.checkpoint import read_run_record

    quiet_libraries()
    with temporary_directory() as scratch:
        path = Path(source)
        from_file = path.suffix in (".ckpt", ".joblib") or path.exists()
        checkpoint = path if from_file else download_checkpoint(source, Path(scratch), tracking_uri)
        record = read_run_record(checkpoint)
        cfg = compose([*record["overrides"], *overrides]) if overrides else OmegaConf.create(record["config"])
        for key in config_drift(record["config"], cfg, overrides)[:5]:
            print(f"warning: {key} differs from the trained run's config (configs/ changed since?)", file=sys.stderr)
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        data = build_windows(cfg.data)
        check_compatible(record, data.feature_names, data.class_names)
        if not is_classical(cfg):
            from twinids.training.neural import build_module

            module = build_module(cfg, data.n_features, data.class_names, data.class_counts("train"))
        tags = {**run_tags(cfg, "eval"), "twinids.source_run_id": record.get("run_id", "")}
        with start_run(cfg.tracking.experiment, tracking_uri or cfg.tracking.uri, None, tags) as run:
            run.log_config(cfg, [*record["overrides"], *overrides])
            if is_classical(cfg):
                from twinids.training.classical import load_estimator, score_estimator

                metrics, confusion = score_estimator(load_estimator(checkpoint), data, "test")
                run.log_metrics(metrics, step=0)
            else:
                from twinids.training.neural import test_neural

                metrics, confusion = test_neural(cfg, data, module, run.logger, checkpoint)
            log_confusion(run, confusion, data.class_names)
    return RunResult(metrics, run.run_id, checkpoint, data.class_names, confusion)


def _fit_classical(
    estimator: Any, data: Any, run: Any, record: dict[str, Any], run_dir: Path
) -> tuple[dict[str, float], Path, np.ndarray]:
    from twinids.training.classical import fit_estimator, save_estimator, score_estimator

    fit_estimator(estimator, data)
    val_metrics, _ = score_estimator(estimator, data, "val")
    metrics, confusion = score_estimator(estimator, data, "test")
    run.log_metrics({**val_metrics, **metrics}, step=0)
    return metrics, save_estimator(estimator, record, run_dir / "checkpoints"), confusion


def check_estimator_params(estimator: Any, name: str) -> None:
    """Validate a scikit-learn estimator's parameters now (sklearn itself waits until fit, inside the run)."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        estimator._validate_params()
    except InvalidParameterError as error:
        raise TwinIDSError(f"model '{name}': {error}") from error


def run_tags(cfg: DictConfig, job: str) -> dict[str, str]:
    """Tags that make runs filterable in the MLflow dashboard."""
    return {
        "twinids.job": job,
        "twinids.dataset": str(cfg.data.name),
        "twinids.model": str(cfg.model.name),
        "twinids.privacy": str(cfg.privacy.name),
        "twinids.task": f"{cfg.task}/{cfg.data.task}",
        "twinids.seed": str(cfg.seed),
    }


def log_confusion(run: Any, matrix: np.ndarray, class_names: list[str]) -> None:
    """Log the test confusion matrix as CSV and as a plot."""
    import matplotlib.pyplot as plt

    from twinids.training.figures import confusion_csv, confusion_figure

    run.log_text(confusion_csv(matrix, class_names), "test/confusion_matrix.csv")
    figure = confusion_figure(matrix, class_names, "test confusion matrix")
    run.log_figure(figure, "test/confusion_matrix.png")
    plt.close(figure)


def config_drift(trained: dict[str, Any], cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """Keys whose value in a recomposed config differs from the trained run's, outside what overrides touch."""
    touched = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    before = _flatten(trained)
    after = _flatten(OmegaConf.to_container(cfg, resolve=True))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return sorted(k for k in changed if not any(k == t or k.startswith(t + ".") for t in touched))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, child in tree.items() for k, v in _flatten(child, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def check_compatible(record: dict[str, Any], feature_names: list[str], class_names: list[str]) -> None:
    """Refuse data whose encoded features or classes differ from what the checkpoint was trained on."""
    trained_features = record.get("feature_names")  # absent in checkpoints written before it was recorded
    if (trained_features or record["n_features"]) != (feature_names if trained_features else len(feature_names)):
        missing = sorted(set(trained_features or []) - set(feature_names))[:5]
        raise TwinIDSError(
            f"the checkpoint's model takes {record['n_features']} features per step but this data has "
            f"{len(feature_names)} (or in another order); missing e.g. {missing}; evaluate on data with the "
            "same feature set"
        )
    if record["class_names"] != class_names:
        raise TwinIDSError(f"the checkpoint predicts classes {record['class_names']} but this data has {class_names}")


def quiet_libraries() -> None:
    """Keep library chatter (device summaries, dataloader-worker hints) out of the command's output."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import pytorch_lightning  # noqa: F401  (its import sets its loggers to INFO; lower them afterwards)

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*LeafSpec.*",
        ".*callbacks used to create the checkpoint need to be provided.*",
        ".*have no `val_dataloader`.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
