"""Alarm threshold from normal validation scores only, for a target false-alarm rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from twinids.errors import TwinIDSError, require_number


def threshold_for_fpr(normal_scores: np.ndarray | Sequence[float], *, target_fpr: float) -> float:
    """The score above which a window raises an alarm, so that at most ``target_fpr`` of normal scores do.

    Takes scores of normal validation windows only, never labels: a threshold tuned on attacks would
    report detection rates that no deployment could reach.

    Rule (an "inverted CDF" quantile, no interpolation): with n scores, at most m = floor(target_fpr * n)
    of them may alarm, and the threshold is the (n - m)-th smallest score. Alarms are scores strictly
    greater than the threshold (``alarms``), so scores tied with it do not alarm and the false-alarm rate
    on these scores never exceeds ``target_fpr``. With fewer than 1 / target_fpr scores, m = 0 and the
    threshold is the largest normal score. Example: scores 1..100, target_fpr 0.01 -> threshold 99.

    Args:
        normal_scores: 1-D scores of normal validation windows, all finite.
        target_fpr: the false-alarm rate to allow, in (0, 1), e.g. 0.01.

    Returns:
        The threshold, a float.

    Raises:
        TwinIDSError: for an empty or non-1-D score array, non-finite scores, or ``target_fpr`` outside (0, 1).
    """
    require_number(target_fpr, "threshold.target_fpr", 0, 1, open_low=True, open_high=True)
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise TwinIDSError(
            f"the threshold needs a non-empty 1-D array of normal validation scores, got shape {scores.shape}."
        )
    if not np.isfinite(scores).all():
        raise TwinIDSError("normal validation scores hold NaN or infinite values; check the residual scorer's input.")
    n = scores.size
    # The tolerance keeps a product that is whole in decimal whole: 0.29 * 100 is 28.999999999999996 in floats.
    allowed_alarms = min(n - 1, math.floor(target_fpr * n + 1e-9))
    return float(np.sort(scores)[n - 1 - allowed_alarms])


def alarms(scores: np.ndarray | Sequence[float], threshold: float) -> np.ndarray:
    """Boolean alarm per window: score strictly greater than ``threshold`` (ties with it stay quiet)."""
    return np.asarray(scores, dtype=np.float64) > threshold
