"""The one interface every kind of detector is trained and tested through, and the registry of kinds.

A model config names its kind (`model.detector: lightning | sklearn`); `train` and `evaluate` never ask
which kind they hold. A new kind is one class here in the registry and nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from omegaconf import DictConfig

from twinids.errors import TwinIDSError

if TYPE_CHECKING:
    from twinids.data.prepare import WindowedData
    from twinids.tracking.run import TrackedRun
    from twinids.training.model_card import ModelCard


@dataclass(frozen=True)
class TestReport:
    """What testing a detector on one split gave: metrics named `<split>/...` and the confusion matrix."""

    metrics: dict[str, float]
    confusion: np.ndarray


@dataclass
class JobContext:
    """Where a job writes: its MLflow run, its model card and its local output folder."""

    run: TrackedRun
    card: ModelCard
    run_dir: Path
    callbacks: list[Any] = field(default_factory=list)  # extra Lightning callbacks (e.g. a tuning trial's pruning)


class Detector(Protocol):
    """Fit, load and test one detector; built from the composed config and the job's windows.

    Construction checks every setting it will use and raises TwinIDSError before any run exists.
    """

    checkpoint_suffix: str
    epochs_trained: int  # passes over the training windows the last fit made
    windows_trained: int  # training windows the last fit processed (for windows/s)

    def fit(self, data: WindowedData, job: JobContext, resume_from: Path | None = None) -> Path:
        """Train on the train split (validating on val); return the checkpoint to test."""
        ...

    def load(self, checkpoint: Path) -> None:
        """Load trained weights from a checkpoint file (data only: nothing in it may run code)."""
        ...

    def test(self, data: WindowedData, job: JobContext) -> TestReport:
        """Metrics of the loaded or trained detector on the test split, logged to the job's run."""
        ...

    def privacy_summary(self) -> dict[str, Any] | None:
        """What DP-SGD spent (ε, δ, σ, ...), or None for a non-private detector."""
        ...

    def artifacts(self) -> dict[str, str]:
        """Text files (artifact path -> content) the detector wants kept with its run."""
        ...


def detector_kinds() -> dict[str, type]:
    """Registry: `model.detector` value -> detector class."""
    from twinids.training.lightning_detector import LightningDetector
    from twinids.training.physics_detector import PhysicsResidualDetector
    from twinids.training.sklearn_detector import SklearnDetector

    return {"lightning": LightningDetector, "sklearn": SklearnDetector, "physics": PhysicsResidualDetector}


def make_detector(cfg: DictConfig, data: WindowedData, training: bool = True) -> Detector:
    """The detector `cfg.model` names, sized to `data`; settings errors are raised here, before any run.

    With `training=False` (evaluation) the training-only settings (privacy, trainer limits) are not planned.
    """
    kinds = detector_kinds()
    kind = cfg.model.get("detector")
    if kind not in kinds:
        raise TwinIDSError(f"model.detector must be one of {sorted(kinds)}; got {kind!r} in model '{cfg.model.name}'")
    model_task = cfg.model.get("task")
    if model_task not in TASKS:
        raise TwinIDSError(f"model '{cfg.model.name}' must say its task (model.task: {' | '.join(TASKS)})")
    if cfg.task != model_task:
        raise TwinIDSError(_TASK_MISMATCH[model_task].format(model=cfg.model.name, task=cfg.task))
    return kinds[kind](cfg, data, training)


TASKS = ("classify", "score")
_TASK_MISMATCH = {
    "classify": "model={model} is a supervised classifier; it cannot run with task={task} (use a one-class model: "
    "lstm_forecaster, lstm_autoencoder, lstm_sae_mha_score, physics_residual)",
    "score": "model={model} is a one-class detector (it learns normal windows and scores deviations): run it with "
    "task=score data.train_on=normal, not task={task}",
}
