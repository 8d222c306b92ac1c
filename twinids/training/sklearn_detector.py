"""Classical baselines (scikit-learn estimators) on flattened windows, through the same detector interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from twinids.data.prepare import WindowedData
from twinids.errors import TwinIDSError
from twinids.models.metrics import DetectionMetrics
from twinids.training.checkpoint_io import SKLEARN_SUFFIX, load_sklearn_checkpoint, save_sklearn_checkpoint
from twinids.training.detector import JobContext, Supports, TestReport, WindowRule


class SklearnDetector:
    """A scikit-learn classifier named by `model.estimator`; attack score = 1 − P(normal)."""

    checkpoint_suffix = SKLEARN_SUFFIX
    supports = Supports(
        epochs=False,
        callbacks=False,
        privacy=False,
        transfer=False,
        resume=False,
        why_not="a scikit-learn estimator is fitted in one pass, without gradient steps (DP-SGD privatises those) "
        "or weights to transfer",
    )

    def __init__(self, cfg: DictConfig, data: WindowedData, training: bool = True) -> None:
        from twinids.config import build

        self.name = str(cfg.model.name)
        self.estimator = build(cfg.model.estimator, f"model '{self.name}'")
        _check_estimator_params(self.estimator, self.name)
        self.class_names = list(data.class_names)
        self.attack_names = list(data.attack_names)
        self.epochs_trained = self.windows_trained = 0

    def fit(self, data: WindowedData, job: JobContext, resume_from: Path | None = None) -> Path:
        """Fit on the flattened training windows, log validation metrics, and save the model with skops."""
        windows = data.windows("train")
        self.estimator.fit(windows.reshape(len(windows), -1), data.targets["train"])
        self.epochs_trained, self.windows_trained = 1, len(windows)
        job.run.log_metrics(self._score(data, "val")[0], step=0)
        path = job.run_dir / "checkpoints" / f"best{SKLEARN_SUFFIX}"
        save_sklearn_checkpoint(self.estimator, job.card, path)
        return path

    def load(self, checkpoint: Path) -> None:
        """Replace the estimator with the one stored in a skops checkpoint."""
        self.estimator = load_sklearn_checkpoint(checkpoint)["estimator"]

    def test(self, data: WindowedData, job: JobContext) -> TestReport:
        """Test-split metrics, logged to the job's run."""
        metrics, confusion = self._score(data, "test")
        job.run.log_metrics(metrics, step=0)
        return TestReport(metrics, confusion)

    def window_losses(self, data: WindowedData, split: str, indices: np.ndarray) -> np.ndarray:
        """Cross-entropy of each chosen window's true class under the fitted estimator's probabilities."""
        windows = data.windows(split)[indices]
        probabilities = self._probabilities(windows)
        true = probabilities[np.arange(len(windows)), data.targets[split][indices]]
        return -np.log(np.clip(true, 1e-12, 1.0))

    def window_rule(self) -> Any:
        """Windows one at a time as `test` decides: score 1 - P(normal), the most probable class decides."""
        return WindowRule(self._window_scores, 1, None)

    def _window_scores(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = self._probabilities(windows).astype(np.float32)  # as `test` scores them
        return 1.0 - probabilities[:, 0].astype(np.float64), probabilities.argmax(axis=1)

    def privacy_summary(self) -> dict[str, Any] | None:
        """Classical models are never trained privately."""
        return None

    def artifacts(self) -> dict[str, str]:
        """Nothing beyond the checkpoint."""
        return {}

    def _score(self, data: WindowedData, split: str) -> tuple[dict[str, float], np.ndarray]:
        probabilities_t = torch.from_numpy(self._probabilities(data.windows(split)).astype(np.float32))
        metrics = DetectionMetrics(self.class_names, self.attack_names, split)
        metrics.update(
            1.0 - probabilities_t[:, 0],
            probabilities_t.argmax(dim=1),
            torch.from_numpy(data.targets[split]),
            torch.from_numpy(data.attacks[split]),
            probabilities_t,
            torch.from_numpy(data.groups[split]),
        )
        return {k: float(v) for k, v in metrics.compute().items()}, metrics.confusion().numpy()

    def _probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Each window's probability of every class, zero for a class the estimator never saw in training."""
        probabilities = np.zeros((len(windows), len(self.class_names)))
        if len(windows):
            probabilities[:, self.estimator.classes_] = self.estimator.predict_proba(windows.reshape(len(windows), -1))
        return probabilities


def _check_estimator_params(estimator: Any, name: str) -> None:
    """Validate a scikit-learn estimator's parameters now (sklearn itself waits until fit, inside the run)."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        estimator._validate_params()
    except InvalidParameterError as error:
        raise TwinIDSError(f"model '{name}': {error}") from error
