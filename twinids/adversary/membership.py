"""Membership inference: can an attacker tell the windows a detector trained on from windows it never saw?

Members are training windows, non-members are held-out windows (validation and test splits) of the same
network. Windows overlap in time, and a non-member that shared 19 of its 20 readings with a member would be a
member in all but name: splits are cut on readings, never inside a window, so no held-out window shares a
reading with a training window, and `membership_sample` checks that before any attack runs. The two sides are
matched class by class, so that the attack cannot win by telling attacks from normal traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twinids.data.halves import readings_read
from twinids.data.prepare import WindowedData
from twinids.errors import TwinIDSError

MEMBER_SPLIT = "train"


@dataclass(frozen=True)
class MembershipSample:
    """Window indices per split: `members` index the training split, `non_members` map a split to its indices."""

    members: np.ndarray
    non_members: dict[str, np.ndarray]

    @property
    def sizes(self) -> tuple[int, int]:
        """(members, non-members)."""
        return len(self.members), sum(len(i) for i in self.non_members.values())


def membership_sample(
    data: WindowedData, non_member_splits: Sequence[str], per_side: int, rng: np.random.Generator
) -> MembershipSample:
    """Members from the training split and non-members from `non_member_splits`, sharing no reading across the
    sides, the same number of each class on both sides, at most `per_side` windows per side.

    Raises:
        TwinIDSError: for an unknown or training split, a held-out window that shares a reading with a training
            window, or when no class has windows on both sides.
    """
    for split in non_member_splits:
        if split not in data.starts or split == MEMBER_SPLIT:
            raise TwinIDSError(
                f"audit.non_member_splits: '{split}' is not a held-out split of this data (choose from "
                f"{sorted(s for s in data.starts if s != MEMBER_SPLIT)})"
            )
    _check_no_shared_readings(data, non_member_splits)
    members = np.arange(len(data.starts[MEMBER_SPLIT]))
    member_classes = data.targets[MEMBER_SPLIT]
    held_out = [np.arange(len(data.starts[split])) for split in non_member_splits]
    held_out_split = np.concatenate([np.full(len(ids), n) for n, ids in enumerate(held_out)])  # which split
    held_out_window = np.concatenate(held_out)  # which window of that split
    held_out_classes = np.concatenate(
        [data.targets[s][ids] for s, ids in zip(non_member_splits, held_out, strict=True)]
    )
    matched = {
        c: min(int((member_classes == c).sum()), int((held_out_classes == c).sum()))
        for c in range(len(data.class_names))
    }
    total = sum(matched.values())
    if total == 0:
        raise TwinIDSError(
            "no class has windows both in the training split and in the held-out splits "
            f"{list(non_member_splits)}: there is nothing to match members against"
        )
    scale = min(1.0, per_side / total)
    picked_members, picked_held_out = [], []
    for c, count in matched.items():
        take = int(count * scale)
        picked_members.append(rng.choice(members[member_classes == c], take, replace=False))
        picked_held_out.append(rng.choice(np.flatnonzero(held_out_classes == c), take, replace=False))
    picked = np.concatenate(picked_held_out).astype(np.int64)
    non_members = {
        split: np.sort(held_out_window[picked[held_out_split[picked] == n]])
        for n, split in enumerate(non_member_splits)
    }
    return MembershipSample(np.sort(np.concatenate(picked_members)).astype(np.int64), non_members)


def _check_no_shared_readings(data: WindowedData, non_member_splits: Sequence[str]) -> None:
    """Refuse data whose held-out windows share a reading with a training window (they would be members)."""
    member_readings = readings_read(data, MEMBER_SPLIT)
    for split in non_member_splits:
        shared = int((member_readings & readings_read(data, split)).sum())
        if shared:
            raise TwinIDSError(
                f"{shared} readings are in both training and '{split}' windows: its windows are not "
                "non-members; audit data whose splits are cut between windows"
            )


def attack_metrics(member_scores: np.ndarray, non_member_scores: np.ndarray) -> dict[str, float]:
    """How well a membership score (higher = "member") separates the sides: ROC AUC (0.5 = no better than a
    coin) and the true-positive rate at 1% and 0.1% false positives (Carlini et al. 2022: an attack matters
    when it is confident about a few windows, which an average like AUC hides)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if len(member_scores) == 0 or len(non_member_scores) == 0:
        raise TwinIDSError("membership inference needs members and non-members; one side is empty")
    truth = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    scores = np.concatenate([member_scores, non_member_scores]).astype(np.float64)
    fpr, tpr, _ = roc_curve(truth, scores)
    return {
        "mia_auc": float(roc_auc_score(truth, scores)),
        "mia_tpr_at_1pct_fpr": float(tpr[fpr <= 0.01].max()),
        "mia_tpr_at_0.1pct_fpr": float(tpr[fpr <= 0.001].max()),
        "mia_advantage": float((tpr - fpr).max()),
    }


def logit_confidence(losses: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) for p = exp(−loss): for a classifier p is the probability of the true class, and this
    scale makes a window's confidences across models close to Gaussian (Carlini et al. 2022, LiRA)."""
    loss = np.clip(np.asarray(losses, dtype=np.float64), 1e-12, None)
    return -loss - np.log(-np.expm1(-loss))


def lira_offline_scores(
    target: np.ndarray, shadows: np.ndarray, out: np.ndarray, min_out: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Offline likelihood-ratio scores (LiRA, Carlini et al. 2022, with one variance for all windows, which holds
    up with few shadows): how far the target's confidence on a window lies above what shadow models that never
    read it give that window, in shadow standard deviations.

    Args:
        target: the target's logit confidence per window, `(windows,)`.
        shadows: each shadow's logit confidence per window, `(shadows, windows)`.
        out: `(shadows, windows)`, True where the shadow read no reading of the window.
        min_out: windows with fewer "out" shadows get no score.

    Returns:
        `(scores, scored)`: a score per window (higher = likelier a member) and the mask of windows scored.

    Raises:
        TwinIDSError: when too few windows have "out" shadows to estimate the spread.
    """
    n_out = out.sum(axis=0)
    scored = n_out >= min_out
    mean_out = np.where(out, shadows, 0.0).sum(axis=0) / np.maximum(n_out, 1)
    residuals = (shadows - mean_out)[out & scored[None, :]]
    if residuals.size < 2 or scored.sum() < 2:
        raise TwinIDSError("too few windows were left out of any shadow model's training; train more shadows")
    spread = float(np.sqrt((residuals**2).sum() / max(residuals.size - scored.sum(), 1)))
    return (target - mean_out) / max(spread, 1e-12), scored
