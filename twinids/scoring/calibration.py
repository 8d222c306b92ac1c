"""From deviations to alarms for one-class detectors: a scorer fitted on normal validation windows, causal
smoothing within each device's run, and a threshold for a target false-alarm rate; stored as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from twinids.errors import TwinIDSError, require_integer
from twinids.scoring.normalize import SCORER_KINDS, ResidualScorer, smooth
from twinids.scoring.threshold import alarms, threshold_for_fpr

ARRAY_STATE = ("mean", "std", "precision")  # scorer statistics stored as tensors in checkpoints


class ErrorRatioScorer:
    """Scores a per-window error by its ratio to the mean error of normal windows (a normal window scores about 1).

    A monotone rescaling of one number per window: unlike a squared z-score, an error below normal never alarms.
    """

    kind = "error_ratio"

    def __init__(self) -> None:
        self.mean: float | None = None

    def fit(self, normal_errors: np.ndarray) -> ErrorRatioScorer:
        """Learn the mean error of normal windows (at least one, all finite)."""
        errors = np.asarray(normal_errors, dtype=np.float64).reshape(-1)
        if errors.size == 0 or not np.isfinite(errors).all():
            raise TwinIDSError("the error scorer needs finite errors of at least one normal validation window")
        self.mean = max(float(errors.mean()), 1e-12)
        return self

    def score(self, errors: np.ndarray) -> np.ndarray:
        """Each error divided by the normal mean, shape (windows,)."""
        return np.asarray(errors, dtype=np.float64).reshape(-1) / self.mean

    def torch_score(self, errors: torch.Tensor) -> torch.Tensor:
        """`score` as a differentiable torch function (float64), for white-box attackers."""
        return errors.to(torch.float64).reshape(-1) / self.mean

    def state_dict(self) -> dict[str, Any]:
        """The fitted mean, as plain types."""
        return {"kind": self.kind, "mean": self.mean}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ErrorRatioScorer:
        """A fitted scorer from `state_dict()`'s output."""
        scorer = cls()
        scorer.mean = float(state["mean"])
        return scorer


class ScoreCalibration:
    """Deviations to alarms: a scorer fitted on normal validation windows, causal smoothing, then a threshold.

    Args:
        scorer: an unfitted scorer (`fit(normal)`, `score(deviations)`, `state_dict()`, `from_state(state)`).
        smooth: windows averaged causally within each group (1: no smoothing).
        target_fpr: share of normal validation windows allowed to alarm after smoothing.
    """

    def __init__(self, scorer: Any, smooth: int, target_fpr: float) -> None:
        self.scorer = scorer
        self.smooth = smooth
        self.target_fpr = target_fpr
        self.threshold: float | None = None

    @property
    def fitted(self) -> bool:
        """Whether a scorer and a threshold have been fitted (or loaded)."""
        return self.threshold is not None

    def fit(self, deviations: np.ndarray, normal: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Fit the scorer on the normal windows, then the threshold on their smoothed scores; return all scores.

        Args:
            deviations: every validation window's deviations, in time order within each group.
            normal: which windows are normal (the only use of validation labels).
            groups: each window's group (one device's run): smoothing never crosses groups.
        """
        self.scorer.fit(deviations[normal])
        scores = self.scores(deviations, groups)
        self.threshold = threshold_for_fpr(scores[normal], target_fpr=self.target_fpr)
        return scores

    def scores(self, deviations: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Smoothed attack score of each window (windows in time order within each group)."""
        return smooth(self.scorer.score(deviations), groups, self.smooth)

    def alarms(self, scores: np.ndarray) -> np.ndarray:
        """Whether each smoothed score is above the fitted threshold."""
        return alarms(scores, self.threshold)

    def state_dict(self) -> dict[str, Any]:
        """Scorer statistics (arrays as float64 tensors), threshold and the settings they were fitted for."""
        scorer = {
            key: torch.tensor(value, dtype=torch.float64) if key in ARRAY_STATE and isinstance(value, list) else value
            for key, value in self.scorer.state_dict().items()
        }
        return {"scorer": scorer, "threshold": self.threshold, "smooth": self.smooth, "target_fpr": self.target_fpr}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a fitted calibration; refuse one fitted for other settings (its threshold would not hold)."""
        fitted_for = {"scorer.kind": state["scorer"]["kind"], "scorer.smooth": state["smooth"]}
        fitted_for["threshold.target_fpr"] = state["target_fpr"]
        wanted = {
            "scorer.kind": self.scorer.kind,
            "scorer.smooth": self.smooth,
            "threshold.target_fpr": self.target_fpr,
        }
        for key, value in fitted_for.items():
            if value != wanted[key]:
                raise TwinIDSError(
                    f"the checkpoint's threshold was fitted with {key}={value}, not {wanted[key]}; evaluate with the "
                    "settings it was trained with (the threshold is fitted on validation data)"
                )
        self.scorer = type(self.scorer).from_state(
            {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in state["scorer"].items()}
        )
        self.threshold = float(state["threshold"])


def residual_calibration(
    scorer: Mapping[str, Any], threshold: Mapping[str, Any], key: str
) -> tuple[ScoreCalibration, int | None]:
    """A calibration of residuals from `<key>.scorer` (kind, smooth, last_steps) and `<key>.threshold`, and the
    number of last steps to score (None: every step). `key` is where the user set them (`model.module`, `model`)."""
    settings = dict(scorer)
    kind, last_steps = settings.pop("kind", None), settings.pop("last_steps", None)
    if kind not in SCORER_KINDS:
        raise TwinIDSError(f"{key}.scorer.kind must be one of {', '.join(SCORER_KINDS)}; got {kind!r}")
    require_integer(last_steps, f"{key}.scorer.last_steps", 1, optional=True)
    return calibration_from_settings(ResidualScorer(kind), settings, threshold, key), last_steps


def calibration_from_settings(
    scorer: Any, settings: dict[str, Any], threshold: Mapping[str, Any], key: str
) -> ScoreCalibration:
    """A calibration from `<key>.scorer` (after the scorer's own keys were taken) and `<key>.threshold`."""
    span = settings.pop("smooth", None)
    require_integer(span, f"{key}.scorer.smooth", 1)
    if settings:
        raise TwinIDSError(f"unknown {key}.scorer settings {sorted(settings)} for this model")
    extra = sorted(set(threshold) - {"target_fpr"})
    target_fpr = threshold.get("target_fpr")
    if extra or isinstance(target_fpr, bool) or not isinstance(target_fpr, int | float) or not 0 < target_fpr < 1:
        raise TwinIDSError(f"{key}.threshold must hold target_fpr, a false-alarm rate in (0, 1); got {dict(threshold)}")
    return ScoreCalibration(scorer, span, float(target_fpr))
