"""Pure scoring logic for one-class detectors: residuals to scores, scores to alarms, alarms to episode metrics."""

from twinids.scoring.episodes import BATADAL_GAMMA, BatadalScore, Episode, batadal_score, find_episodes
from twinids.scoring.normalize import SCORER_KINDS, ResidualScorer, smooth
from twinids.scoring.threshold import alarms, threshold_for_fpr

__all__ = [
    "BATADAL_GAMMA",
    "SCORER_KINDS",
    "BatadalScore",
    "Episode",
    "ResidualScorer",
    "alarms",
    "batadal_score",
    "find_episodes",
    "smooth",
    "threshold_for_fpr",
]
