"""The one interface every detector is trained and tested through, and how a model config names its class.

A model config names its detector class (`model.detector._target_`), as anomalib resolves a class path:
`train`, `evaluate`, sweeps and tuning build it here and never ask which kind they hold. Each detector says
what it supports (`Supports`), owns its checkpoint format, and refuses what it cannot do. This module imports
nothing else of `twinids.training`, so detectors (ours or a researcher's own package) import it freely.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from omegaconf import DictConfig

from twinids.errors import TwinIDSError, first_line

if TYPE_CHECKING:
    import torch

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


@dataclass(frozen=True)
class Supports:
    """What a detector can do beyond fit/load/test; a job that needs more is refused before any run exists.

    Attributes:
        epochs: trains in passes over the data (so `trainer.*` limits and epoch metrics apply).
        callbacks: takes extra Lightning callbacks (e.g. a tuning trial's pruning).
        privacy: can train with `privacy=dp` (DP-SGD privatises gradient steps).
        transfer: can start from a pre-trained source (`transfer=finetune`) and be one.
        resume: can continue a stopped training run from its last checkpoint.
        why_not: the reason given when a setting it does not support is asked for.
    """

    epochs: bool
    callbacks: bool
    privacy: bool
    transfer: bool
    resume: bool
    why_not: str = ""


class Detector(Protocol):
    """Fit, load and test one detector; built from the composed config and the job's windows.

    Construction (`Detector(cfg, data, training)`) checks every setting it will use and raises TwinIDSError
    before any run exists. With `training=False` (evaluation) training-only settings are not planned.
    """

    supports: ClassVar[Supports]
    # The file it writes: a plain-data torch file (`.ckpt`, `checkpoint_io.save_torch_checkpoint`) or a skops file
    # (`.skops`), with the model card inside. Only formats that load without running code are read, and the card
    # must be readable before the detector's class is known (it names the class), so the formats are these two.
    checkpoint_suffix: ClassVar[str]
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


class Auditable(Protocol):
    """A detector whose per-window loss an attacker can read: `twinids audit` runs membership inference on it."""

    def window_losses(self, data: WindowedData, split: str, indices: np.ndarray) -> np.ndarray:
        """The loaded weights' training loss on windows `indices` of `split`, one value per window."""
        ...


def require_auditable(detector: Detector, name: str) -> Auditable:
    """The detector, if it offers per-window losses; else one error line saying why it cannot be audited."""
    if not callable(getattr(detector, "window_losses", None)):
        raise TwinIDSError(
            f"model '{name}' offers no per-window loss (Auditable.window_losses), which a membership-inference "
            "attack reads; twinids audit cannot attack it"
        )
    return detector  # type: ignore[return-value]


@dataclass(frozen=True)
class AlarmScore:
    """A detector's alarm as a differentiable function of its windows: what a white-box attacker descends.

    A window alarms when the causal mean of `score` over the last `smooth` windows of its run is above
    `threshold` (a classifier: `smooth` 1, and its score is the margin of the likeliest attack class over normal).
    """

    score: Callable[[torch.Tensor], torch.Tensor]  # windows (n, time, features) -> (n,) raw scores, float64
    smooth: int
    threshold: float


class Concealable(Protocol):
    """A detector whose alarm is differentiable in its input: `twinids attack --method iterative` attacks it."""

    def alarm_score(self) -> AlarmScore:
        """The loaded detector's alarm rule, with a score torch can differentiate through."""
        ...


def require_concealable(detector: Detector, name: str) -> Concealable:
    """The detector, if its alarm is differentiable; else one error line naming the attacks that need no gradient."""
    if not callable(getattr(detector, "alarm_score", None)):
        raise TwinIDSError(
            f"model '{name}' has no differentiable alarm (Concealable.alarm_score), which the white-box iterative "
            "attack descends; attack it with --method replay or --method learned (black-box)"
        )
    return detector  # type: ignore[return-value]


@dataclass(frozen=True)
class WindowRule:
    """How a loaded detector decides on windows one at a time, as `test` decides on a split: what a stream uses.

    `score` maps windows (n, time, features) to raw scores (n,) float64 and, for a detector that names classes
    itself (a classifier), the predicted class of each (n,) int; else None. A classifier alarms when its class is
    not normal; any other detector when the causal mean of its score over the last `smooth` windows of a device
    is above `threshold` (`twinids.scoring.normalize.smooth`, as its test does).
    """

    score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    smooth: int
    threshold: float | None  # None: the classifier's predicted class decides


class Streamable(Protocol):
    """A detector that scores windows one at a time: `twinids detect` runs it on a live stream."""

    def window_rule(self) -> WindowRule:
        """The loaded detector's rule for deciding on windows as they arrive."""
        ...


def require_streamable(detector: Detector, name: str) -> Streamable:
    """The detector, if it can score windows one at a time; else one error line saying why not."""
    if not callable(getattr(detector, "window_rule", None)):
        raise TwinIDSError(f"model '{name}' cannot score windows one at a time (Streamable.window_rule)")
    return detector  # type: ignore[return-value]


class Exportable(Protocol):
    """A detector whose window rule is one torch function: `twinids export --format onnx` writes it for onnxruntime."""

    def scoring_graph(self) -> torch.nn.Module:
        """The loaded detector's `WindowRule.score` as a torch module in eval mode: windows (n, time, features) float32
        -> {"score": (n,) float64, and for a classifier "predicted": (n,) int64, "probabilities": (n, classes)}."""
        ...


def require_exportable(detector: Detector, name: str) -> Exportable:
    """The detector, if its window rule is one torch function; else one error line saying why it cannot be exported."""
    if not callable(getattr(detector, "scoring_graph", None)):
        raise TwinIDSError(
            f"model '{name}' cannot be exported to ONNX: its window rule is not a torch function "
            "(Exportable.scoring_graph); scikit-learn detectors are not exported. Run `twinids detect` on the run"
        )
    return detector  # type: ignore[return-value]


DETECTOR_MEMBERS = ("fit", "load", "test", "privacy_summary", "artifacts")


def detector_class(model: DictConfig | dict[str, Any]) -> type[Detector]:
    """The class `model.detector._target_` names, checked against the Detector protocol.

    Raises:
        TwinIDSError: when the node is missing, the class cannot be imported, or it lacks part of the protocol.
    """
    from hydra.utils import get_class

    name = model.get("name", "?")
    node = model.get("detector")
    target = node.get("_target_") if hasattr(node, "get") else None
    if not isinstance(target, str):
        raise TwinIDSError(
            f"model '{name}' must name its detector class: model.detector._target_ (e.g. "
            f"twinids.training.lightning_detector.LightningDetector); got model.detector={node!r}"
        )
    try:
        cls = get_class(target)
    except Exception as error:
        raise TwinIDSError(f"model.detector._target_={target} cannot be imported: {first_line(error)}") from None
    missing = [member for member in DETECTOR_MEMBERS if not callable(getattr(cls, member, None))]
    if not _takes_detector_arguments(cls):
        missing.insert(0, "a constructor (cfg, data, training)")
    if not isinstance(getattr(cls, "supports", None), Supports):
        missing.append("supports (a twinids.training.detector.Supports)")
    if not isinstance(getattr(cls, "checkpoint_suffix", None), str):
        missing.append("checkpoint_suffix")
    if missing:
        raise TwinIDSError(
            f"model.detector._target_={target} is not a twinids detector: it lacks {', '.join(missing)} "
            "(see twinids.training.detector.Detector)"
        )
    return cls


def make_detector(cfg: DictConfig, data: WindowedData, training: bool = True) -> Detector:
    """The detector `cfg.model` names, sized to `data`; settings errors are raised here, before any run."""
    cls = detector_class(cfg.model)
    check_task(cfg)
    if training:
        refuse_unsupported(cfg, cls.supports)
    return cls(cfg, data, training=training)


def refuse_unsupported(cfg: DictConfig, supports: Supports) -> None:
    """Refuse privacy or transfer settings the model's detector cannot act on (they would be silently ignored)."""
    name = cfg.model.name
    privacy = cfg.privacy.name
    if privacy != "none" and not supports.privacy:
        raise TwinIDSError(
            f"model={name} cannot train with privacy={privacy}: "
            f"{supports.why_not or 'its detector takes no gradient steps'}; use a neural model (e.g. model=lstm) "
            "or privacy=none"
        )
    canaries = cfg.privacy.get("audit", {}).get("canaries")
    if canaries and not supports.privacy:
        raise TwinIDSError(
            f"model={name} cannot take privacy.audit.canaries={canaries}: the one-run audit's canaries ride on "
            f"gradient steps and window losses ({supports.why_not or 'its detector takes no gradient steps'}); "
            "audit a neural model, or use `twinids audit RUN_ID` (membership inference) on this one"
        )
    transfer = cfg.get("transfer", {}).get("name", "none")
    if transfer == "none":
        ignored = sorted(k for k, value in cfg.transfer.items() if k not in ("name", "plan") and value is not None)
        if ignored:
            raise TwinIDSError(
                f"transfer.{ignored[0]} is set, but transfer=none reads nothing of it (no transfer would happen): "
                "add transfer=finetune, or drop the setting"
            )
    if transfer != "none" and not supports.transfer:
        raise TwinIDSError(
            f"model={name} cannot be fine-tuned (transfer={transfer}): "
            f"{supports.why_not or 'it has no pre-trained weights to start from'}; use a neural model or transfer=none"
        )


def check_task(cfg: DictConfig) -> None:
    """The model says its task (classify | score), and the job's `task` matches it."""
    model_task = cfg.model.get("task")
    if model_task not in TASKS:
        raise TwinIDSError(f"model '{cfg.model.name}' must say its task (model.task: {' | '.join(TASKS)})")
    if cfg.task != model_task:
        raise TwinIDSError(_TASK_MISMATCH[model_task].format(model=cfg.model.name, task=cfg.task))


def _takes_detector_arguments(cls: type) -> bool:
    try:
        inspect.signature(cls).bind(None, None, training=True)
    except (TypeError, ValueError):  # ValueError: a builtin type with no signature
        return False
    return True


TASKS = ("classify", "score")
_TASK_MISMATCH = {
    "classify": "model={model} is a supervised classifier; it cannot run with task={task} (use a one-class model: "
    "lstm_forecaster, lstm_autoencoder, lstm_sae_mha_score, physics_residual)",
    "score": "model={model} is a one-class detector (it learns normal windows and scores deviations): run it with "
    "task=score data.train_on=normal, not task={task}",
}
