"""Residual normalisation: one attack score per window from a net's residuals, fitted on normal windows only.

Both scores are scaled so that a normal window scores about 1:

- ``zscore``: each residual is standardised by its feature's mean and standard deviation (population,
  pooled over windows and steps of the normal residuals); the score is the mean of the squared z-scores
  over steps and features, i.e. the squared norm of the z-vector divided by its length. Squaring weights a
  few large deviations more than a mean of |z| would, without letting one noisy sensor decide alone as a
  max would; it is the diagonal special case of the Mahalanobis score.
- ``mahalanobis``: each window's residuals, flattened to one vector of ``steps * features``, are compared
  with the mean and covariance of the normal windows' vectors; the covariance is shrunk (Ledoit-Wolf) so it
  is invertible with fewer windows than dimensions. The score is the squared distance divided by the
  vector's length, so it also catches residuals that break the normal correlation between sensors.

``smooth`` averages scores over the last few windows of one device, causally.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

from twinids.errors import TwinIDSError, require_integer

SCORER_KINDS = ("zscore", "mahalanobis")
MIN_STD = 1e-8  # floor for a feature whose normal residuals never vary: any deviation there scores very high


class ResidualScorer:
    """Turns residuals (windows, steps, features) into one non-negative score per window.

    Fit it on residuals of normal validation windows only: the score measures how far a window is from
    what the detector's errors look like in normal operation.

    Args:
        kind: ``"zscore"`` (per-feature standardisation) or ``"mahalanobis"`` (shrunk full covariance): the
            ``scorer.kind`` of the model's config, with no default here.

    Raises:
        TwinIDSError: for an unknown ``kind``.
    """

    def __init__(self, kind: str) -> None:
        if kind not in SCORER_KINDS:
            raise TwinIDSError(f"scorer kind must be one of {list(SCORER_KINDS)}, got {kind!r}.")
        self.kind = kind
        self.shape: tuple[int, int] | None = None  # (steps, features) of the fitted residuals
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None  # zscore: per feature
        self.precision: np.ndarray | None = None  # mahalanobis: inverse of the shrunk covariance

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` (or ``from_state``) has set the normal statistics."""
        return self.shape is not None

    def fit(self, normal_residuals: np.ndarray | torch.Tensor) -> ResidualScorer:
        """Learn the normal residual statistics.

        Args:
            normal_residuals: (windows, steps, features) or (windows, features) residuals of normal
                validation windows; at least two windows, all finite.

        Returns:
            This scorer, fitted.

        Raises:
            TwinIDSError: for fewer than two windows, non-finite values or a wrong number of dimensions.
        """
        residuals = _as_residuals(normal_residuals)
        if len(residuals) < 2:
            raise TwinIDSError(
                f"the residual scorer needs residuals of at least 2 normal validation windows, got {len(residuals)}; "
                "use a longer validation split or a smaller data.window."
            )
        if not np.isfinite(residuals).all():
            raise TwinIDSError(
                "normal residuals hold NaN or infinite values: the net diverged; lower the learning rate."
            )
        self.shape = (residuals.shape[1], residuals.shape[2])
        if self.kind == "zscore":
            per_feature = residuals.reshape(-1, residuals.shape[2])
            self.mean = per_feature.mean(axis=0)
            self.std = np.maximum(per_feature.std(axis=0), MIN_STD)
        else:
            shrunk = LedoitWolf().fit(residuals.reshape(len(residuals), -1))
            self.mean = shrunk.location_
            self.precision = shrunk.precision_
        return self

    def score(self, residuals: np.ndarray | torch.Tensor) -> np.ndarray:
        """One score per window, shape (windows,); about 1 for normal windows, larger for deviations.

        Args:
            residuals: residuals shaped like the fitted ones (same steps and features); may be empty.

        Raises:
            TwinIDSError: if the scorer is not fitted or the residuals' shape differs from the fitted one.
        """
        values = _as_residuals(residuals)
        self._check_scorable(values.shape[1:])
        if self.kind == "zscore":
            z = (values - self.mean) / self.std
            return np.square(z).mean(axis=(1, 2))
        centred = values.reshape(len(values), self.shape[0] * self.shape[1]) - self.mean
        squared = np.einsum("nd,de,ne->n", centred, self.precision, centred)
        return np.maximum(squared, 0.0) / centred.shape[1]

    def torch_score(self, residuals: torch.Tensor) -> torch.Tensor:
        """`score` as a differentiable torch function of the residuals (float64): what a white-box attacker
        descends to hide a window."""
        values = residuals.to(torch.float64)
        values = values[:, None, :] if values.ndim == 2 else values
        self._check_scorable(tuple(values.shape[1:]))
        mean = torch.as_tensor(self.mean, dtype=torch.float64)
        if self.kind == "zscore":
            return ((values - mean) / torch.as_tensor(self.std, dtype=torch.float64)).square().mean(dim=(1, 2))
        centred = values.reshape(len(values), -1) - mean
        squared = torch.einsum("nd,de,ne->n", centred, torch.as_tensor(self.precision, dtype=torch.float64), centred)
        return squared.clamp(min=0.0) / centred.shape[1]

    def _check_scorable(self, shape: tuple[int, ...]) -> None:
        """Refuse scoring before `fit`, or residuals whose (steps, features) differ from the fitted ones."""
        if not self.fitted:
            raise TwinIDSError("the residual scorer is not fitted: call fit(normal_residuals) first.")
        if tuple(shape) != self.shape:
            raise TwinIDSError(
                f"residuals have (steps, features) = {tuple(shape)} but the scorer was fitted on {self.shape}; "
                "score with the same net and data settings it was fitted with."
            )

    def state_dict(self) -> dict[str, object]:
        """The fitted statistics as plain str/int/float lists, loadable with ``torch.load(weights_only=True)``."""
        if not self.fitted:
            raise TwinIDSError("the residual scorer is not fitted: there is no state to save.")
        state: dict[str, object] = {"kind": self.kind, "shape": list(self.shape), "mean": self.mean.tolist()}
        if self.kind == "zscore":
            state["std"] = self.std.tolist()
        else:
            state["precision"] = self.precision.tolist()
        return state

    @classmethod
    def from_state(cls, state: dict[str, object]) -> ResidualScorer:
        """A fitted scorer rebuilt from ``state_dict()``'s output.

        Raises:
            TwinIDSError: if the state lacks a key its kind needs (a checkpoint from another version).
        """
        kind = state.get("kind")
        scorer = cls(kind)  # type: ignore[arg-type]
        needed = ("shape", "mean", "std") if kind == "zscore" else ("shape", "mean", "precision")
        missing = [key for key in needed if key not in state]
        if missing:
            raise TwinIDSError(f"the checkpoint's residual scorer state lacks {missing}; refit the scorer.")
        steps, features = state["shape"]  # type: ignore[misc]
        scorer.shape = (int(steps), int(features))
        scorer.mean = np.asarray(state["mean"], dtype=np.float64)
        if kind == "zscore":
            scorer.std = np.asarray(state["std"], dtype=np.float64)
        else:
            scorer.precision = np.asarray(state["precision"], dtype=np.float64)
        return scorer


def smooth(
    scores: np.ndarray | Sequence[float], groups: np.ndarray | Sequence[Hashable] | None, span: int
) -> np.ndarray:
    """Trailing mean of each window's score over the last ``span`` windows of the same device.

    Causal: the smoothed score at position t uses only scores at or before t of the same group, in the
    order given (which must be time order within each device). A device's first windows average over
    the fewer windows available. Groups may be interleaved; smoothing never crosses them.

    Args:
        scores: per-window scores, shape (windows,), in time order within each device.
        groups: device (or run) of each window; None means one device.
        span: windows averaged, >= 1 (the model's ``scorer.smooth``); 1 returns the scores unchanged.

    Returns:
        Smoothed scores, shape (windows,), aligned with the input.

    Raises:
        TwinIDSError: for a span that is not an integer >= 1 or groups of another length.
    """
    values = np.asarray(scores, dtype=np.float64)
    require_integer(int(span) if isinstance(span, np.integer) else span, "scorer.smooth", 1)
    order, position = _order_in_groups(groups, len(values))
    in_order = values[order]
    total, count = in_order.copy(), np.ones(len(values))
    # A loop over lags (span is short), not a cumulative sum: a huge score would wipe out later precision.
    for lag in range(1, span):
        later = np.flatnonzero(position >= lag)
        total[later] += in_order[later - lag]
        count[later] += 1
    smoothed = np.empty_like(values)
    smoothed[order] = total / count
    return smoothed


def smooth_differentiable(scores: torch.Tensor, groups: np.ndarray | None, span: int) -> torch.Tensor:
    """`smooth` on a torch tensor, differentiable: the smoothed scores a white-box attacker must keep low."""
    order, position = _order_in_groups(groups, len(scores))
    in_order = scores[torch.from_numpy(order)]
    total, count = in_order, np.ones(len(scores))
    for lag in range(1, span):
        later = np.flatnonzero(position >= lag)
        total = total.index_add(0, torch.from_numpy(later), in_order[torch.from_numpy(later - lag)])
        count[later] += 1
    smoothed = total / torch.from_numpy(count).to(total.dtype)
    return smoothed[torch.from_numpy(np.argsort(order, kind="stable"))]


def _order_in_groups(groups: np.ndarray | Sequence[Hashable] | None, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable order that puts each group's entries together, and each entry's position within its group."""
    codes = np.zeros(length, dtype=np.int64) if groups is None else _group_codes(groups, length)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    first = np.ones(length, dtype=bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    group_start = np.maximum.accumulate(np.where(first, np.arange(length), 0))
    return order, np.arange(length) - group_start


def _as_residuals(residuals: np.ndarray | torch.Tensor) -> np.ndarray:
    """Residuals as a float64 array (windows, steps, features); a 2-D input is one step per window."""
    if isinstance(residuals, torch.Tensor):
        residuals = residuals.detach().cpu().numpy()
    values = np.asarray(residuals, dtype=np.float64)
    if values.ndim == 2:
        values = values[:, None, :]
    if values.ndim != 3:
        raise TwinIDSError(
            f"residuals must be (windows, steps, features) or (windows, features), got shape {values.shape}."
        )
    return values


def _group_codes(groups: np.ndarray | Sequence[Hashable], length: int) -> np.ndarray:
    """Integer code of each entry's group, refusing a groups array of the wrong length."""
    labels = np.asarray(groups)
    if labels.shape != (length,):
        raise TwinIDSError(f"groups must hold one device per score ({length}), got shape {labels.shape}.")
    return np.unique(labels, return_inverse=True)[1].reshape(-1)
