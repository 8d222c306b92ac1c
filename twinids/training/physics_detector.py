"""The physics twin's own residual as a detector: nothing is trained, only calibrated on normal validation windows.

The simulator's virtual twin runs the device's physics from the commands it sees, and the frame carries its
gap to each reading (`residual_primary`, `residual_secondary` = reading minus twin; twinids/twin/network.py).
This detector scores windows by those columns with the very calibration the learned twins use
(`twinids.scoring.calibration.ScoreCalibration`: a scorer fitted on normal validation windows, causal smoothing,
a threshold for a target false-alarm rate), so the two differ only in where the residual comes from: the
reference a learned twin should approach without knowing the physics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from twinids.data.prepare import WindowedData
from twinids.errors import TwinIDSError
from twinids.models.metrics import DetectionMetrics
from twinids.scoring.calibration import residual_calibration
from twinids.training.checkpoint_io import TORCH_SUFFIX, load_torch_checkpoint, save_torch_checkpoint
from twinids.training.detector import AlarmScore, JobContext, Supports, TestReport, WindowRule
from twinids.training.model_card import CARD_KEY

CALIBRATION_KEY = "twinids_calibration"


class PhysicsResidualDetector:
    """Alarms from the physics twin's residual columns (`model.residual_features`) of each window's last steps."""

    checkpoint_suffix = TORCH_SUFFIX
    supports = Supports(
        epochs=False,
        callbacks=False,
        privacy=False,
        transfer=False,
        resume=False,
        why_not="it trains nothing (the physics twin is given), so privacy and transfer have nothing to act on",
    )

    def __init__(self, cfg: DictConfig, data: WindowedData, training: bool = True) -> None:
        name = str(cfg.model.name)
        columns = [str(column) for column in cfg.model.residual_features]
        missing = [column for column in columns if column not in data.feature_names]
        if missing:
            raise TwinIDSError(
                f"model={name} reads the virtual twin's residual columns {missing}, which data '{cfg.data.name}' "
                f"lacks (features: {', '.join(data.feature_names[:12])}...); use data=synthetic_twin or set "
                "model.residual_features"
            )
        self.columns = [data.feature_names.index(column) for column in columns]
        scorer = OmegaConf.to_container(cfg.model.scorer, resolve=True)
        threshold = OmegaConf.to_container(cfg.model.threshold, resolve=True)
        self.calibration, self.last_steps = residual_calibration(scorer, threshold, "model")
        self.class_names, self.attack_names = list(data.class_names), list(data.attack_names)
        self.epochs_trained = self.windows_trained = 0

    def fit(self, data: WindowedData, job: JobContext, resume_from: Path | None = None) -> Path:
        """Fit the calibration on the normal validation windows, log validation metrics, save it."""
        scores = self.calibration.fit(self._deviations(data, "val"), data.targets["val"] == 0, data.groups["val"])
        job.run.log_metrics(self._metrics(scores, data, "val")[0], step=0)
        path = job.run_dir / "checkpoints" / f"best{TORCH_SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch_checkpoint({CALIBRATION_KEY: self.calibration.state_dict(), CARD_KEY: job.card.to_dict()}, path)
        return path

    def load(self, checkpoint: Path) -> None:
        """Restore the calibration a checkpoint carries (plain data)."""
        state = load_torch_checkpoint(checkpoint)
        if CALIBRATION_KEY not in state:
            raise TwinIDSError(f"{checkpoint} holds no physics residual calibration; it is another model's checkpoint")
        self.calibration.load_state_dict(state[CALIBRATION_KEY])

    def test(self, data: WindowedData, job: JobContext) -> TestReport:
        """Test-split metrics of the calibrated residual score, logged to the job's run."""
        scores = self.calibration.scores(self._deviations(data, "test"), data.groups["test"])
        metrics, confusion = self._metrics(scores, data, "test")
        job.run.log_metrics(metrics, step=0)
        return TestReport(metrics, confusion)

    def alarm_score(self) -> AlarmScore:
        """The calibrated score of the residual columns, differentiable in the windows."""

        def score(windows: torch.Tensor) -> torch.Tensor:
            return self.calibration.scorer.torch_score(self._scored_part(windows))

        return AlarmScore(score, self.calibration.smooth, float(self.calibration.threshold))

    def window_rule(self) -> Any:
        """The calibrated residual score of windows one at a time, smoothed and thresholded as `test` does."""

        def score(windows: np.ndarray) -> tuple[np.ndarray, None]:
            return self.calibration.scorer.score(self._scored_part(windows)), None

        return WindowRule(score, self.calibration.smooth, float(self.calibration.threshold))

    def scoring_graph(self) -> torch.nn.Module:
        """The calibrated residual score as a torch module (no net: the residual columns, then the scorer)."""
        if not self.calibration.fitted:
            raise TwinIDSError("this physics residual detector has no fitted calibration to export")
        return _ResidualScoreGraph(self.columns, self.last_steps, self.calibration.scorer)

    def privacy_summary(self) -> dict[str, Any] | None:
        """Nothing is trained, so no privacy is spent."""
        return None

    def artifacts(self) -> dict[str, str]:
        """Nothing beyond the checkpoint."""
        return {}

    def _deviations(self, data: WindowedData, split: str) -> np.ndarray:
        """The residual columns of each window's last steps, (windows, last_steps, columns)."""
        return self._scored_part(data.windows(split))

    def _scored_part(self, windows: Any) -> Any:
        """What the scorer reads of windows (array or tensor): the residual columns of the last steps."""
        residuals = windows[:, :, self.columns]
        return residuals if self.last_steps is None else residuals[:, -self.last_steps :]

    def _metrics(self, scores: np.ndarray, data: WindowedData, split: str) -> tuple[dict[str, float], np.ndarray]:
        metrics = DetectionMetrics(self.class_names, self.attack_names, split)
        metrics.update(
            torch.from_numpy(scores),
            torch.from_numpy(self.calibration.alarms(scores).astype(np.int64)),
            torch.from_numpy(data.targets[split]),
            torch.from_numpy(data.attacks[split]),
            None,
            torch.from_numpy(data.groups[split]),
        )
        return {k: float(v) for k, v in metrics.compute().items()}, metrics.confusion().numpy()


class _ResidualScoreGraph(torch.nn.Module):
    """Windows -> {"score"}: the scorer of the residual columns of each window's last steps, as `window_rule` scores."""

    def __init__(self, columns: list[int], last_steps: int | None, scorer: Any) -> None:
        super().__init__()
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long))
        self.last_steps, self.scorer = last_steps, scorer

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        residuals = windows.index_select(2, self.columns)
        if self.last_steps is not None:
            residuals = residuals[:, -self.last_steps :]
        return {"score": self.scorer.torch_score(residuals)}
