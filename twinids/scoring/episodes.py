"""Attack episodes and the BATADAL score (Taormina et al. 2018) from per-step labels and alarms.

An episode is a maximal run of consecutive attack-labelled steps in one device's stream. Definitions follow
the BATADAL paper (R. Taormina et al., "The Battle of the Attack Detection Algorithms", J. Water Resour.
Plann. Manage. 144(8), 2018, doi:10.1061/(ASCE)WR.1943-5452.0000969), as stated there:

- S = gamma * S_TTD + (1 - gamma) * S_CM, gamma = 0.5;
- S_TTD = 1 - (1 / n_a) * sum_i TTD_i / dt_i, with TTD_i the steps from attack i's first step to its first
  alarm and dt_i its duration; an undetected attack counts TTD_i = dt_i;
- S_CM = (TPR + TNR) / 2 over all scored steps.

dt_i here is the number of attack steps (BATADAL's 50-hour attack has dt = 50), so an alarm on the first
step gives TTD 0 and one on the last step still scores better than a miss. Some public re-implementations
take dt_i as last minus first timestamp (one step less); their S_TTD differs slightly.

Per-window inputs: pass each window's label of its last step (``label_mode: last``) and its alarm, in time
order. An entry then stands for its window's last step; steps before a run's first full window are not
scored. With ``label_mode: any`` every episode would run ``window - 1`` steps past its real end. With a
stride s > 1, TTD counts windows (s steps each); the ratio TTD / dt is unchanged up to rounding.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from twinids.errors import TwinIDSError

BATADAL_GAMMA = 0.5


@dataclass(frozen=True)
class Episode:
    """One attack episode and when the detector first raised an alarm inside it.

    Attributes:
        group: the device (or run) the episode belongs to.
        start: index, in the arrays given, of the episode's first attack step.
        duration: number of attack steps in the episode.
        time_to_detection: steps from the first attack step to the first alarm inside the episode
            (0 = alarm on the first step); None when no step of the episode raised an alarm.
    """

    group: Hashable
    start: int
    duration: int
    time_to_detection: int | None

    @property
    def detected(self) -> bool:
        """Whether any step of the episode raised an alarm."""
        return self.time_to_detection is not None


@dataclass(frozen=True)
class BatadalScore:
    """The BATADAL score and its parts.

    Without episodes S_TTD, TPR, S_CM and S are NaN (undefined, never 0) and ``has_episodes`` is False;
    without normal steps TNR, S_CM and S are NaN.

    Attributes:
        score: S = gamma * S_TTD + (1 - gamma) * S_CM.
        s_ttd: 1 - mean over episodes of TTD_i / dt_i (a missed episode counts 1).
        s_cm: (TPR + TNR) / 2 over all scored steps.
        tpr: share of attack steps with an alarm.
        tnr: share of normal steps without an alarm.
        episodes: every episode, in order of device then time.
        gamma: the weight of S_TTD.
    """

    score: float
    s_ttd: float
    s_cm: float
    tpr: float
    tnr: float
    episodes: tuple[Episode, ...]
    gamma: float = BATADAL_GAMMA

    @property
    def has_episodes(self) -> bool:
        """Whether the labels hold any attack episode (otherwise S_TTD is undefined)."""
        return bool(self.episodes)

    @property
    def episodes_total(self) -> int:
        """Number of attack episodes."""
        return len(self.episodes)

    @property
    def episodes_detected(self) -> int:
        """Number of episodes with at least one alarm."""
        return sum(episode.detected for episode in self.episodes)

    @property
    def time_to_detection(self) -> tuple[int, ...]:
        """TTD_i of each episode as S_TTD counts it: its duration when missed."""
        return tuple(
            episode.duration if episode.time_to_detection is None else episode.time_to_detection
            for episode in self.episodes
        )

    def as_metrics(self) -> dict[str, float]:
        """Flat metric values (NaN where undefined), named for logging: ``batadal_score``, ``s_ttd``, ..."""
        return {
            "batadal_score": self.score,
            "s_ttd": self.s_ttd,
            "s_cm": self.s_cm,
            "tpr": self.tpr,
            "tnr": self.tnr,
            "episodes_detected": float(self.episodes_detected),
            "episodes_total": float(self.episodes_total),
        }


def find_episodes(
    labels: np.ndarray | Sequence[int],
    alarms: np.ndarray | Sequence[int],
    groups: np.ndarray | Sequence[Hashable] | None = None,
) -> list[Episode]:
    """Every attack episode, with whether and when it was detected.

    Args:
        labels: 0/1 (or bool) attack label per step, in time order within each device.
        alarms: 0/1 (or bool) alarm per step, aligned with ``labels``.
        groups: device (or run) of each step; None means one device. Groups may be interleaved; an
            episode never spans two groups, even when their attack steps are adjacent in the arrays.

    Returns:
        Episodes ordered by group (sorted) then time.

    Raises:
        TwinIDSError: for arrays of different lengths or values other than 0/1.
    """
    attack, alarm = _binary(labels, "labels"), _binary(alarms, "alarms")
    if alarm.shape != attack.shape:
        raise TwinIDSError(f"labels and alarms must align, got {attack.shape[0]} labels and {alarm.shape[0]} alarms.")
    if groups is None:
        uniques, codes = np.array([0]), np.zeros(len(attack), dtype=np.int64)
    else:
        group_values = np.asarray(groups)
        if group_values.shape != attack.shape:
            raise TwinIDSError(f"groups must hold one device per step ({len(attack)}), got shape {group_values.shape}.")
        uniques, codes = np.unique(group_values, return_inverse=True)
        codes = codes.reshape(-1)
    order = np.argsort(codes, kind="stable")
    attack, alarm, codes = attack[order], alarm[order], codes[order]
    new_group = np.ones(len(attack), dtype=bool)
    new_group[1:] = codes[1:] != codes[:-1]
    previous_attack = np.zeros(len(attack), dtype=bool)
    previous_attack[1:] = attack[:-1]
    starts_episode = attack & (new_group | ~previous_attack)
    starts = np.flatnonzero(starts_episode)
    episode_of_step = np.cumsum(starts_episode) - 1
    attack_steps = np.flatnonzero(attack)
    durations = np.bincount(episode_of_step[attack_steps], minlength=len(starts))
    detected_steps = attack_steps[alarm[attack_steps]]
    detected_episodes, first = np.unique(episode_of_step[detected_steps], return_index=True)
    first_alarm = np.full(len(starts), -1)
    first_alarm[detected_episodes] = detected_steps[first]
    return [
        Episode(
            group=None if groups is None else _plain(uniques[codes[start]]),
            start=int(order[start]),
            duration=int(duration),
            time_to_detection=None if alarm_at < 0 else int(alarm_at - start),
        )
        for start, duration, alarm_at in zip(starts, durations, first_alarm, strict=True)
    ]


def batadal_score(
    labels: np.ndarray | Sequence[int],
    alarms: np.ndarray | Sequence[int],
    groups: np.ndarray | Sequence[Hashable] | None = None,
    *,
    gamma: float = BATADAL_GAMMA,
) -> BatadalScore:
    """The BATADAL competition score of per-step alarms against per-step attack labels.

    Args:
        labels: 0/1 (or bool) attack label per step, in time order within each device.
        alarms: 0/1 (or bool) alarm per step, aligned with ``labels``.
        groups: device (or run) of each step; None means one device.
        gamma: weight of S_TTD against S_CM; the competition used 0.5.

    Returns:
        A BatadalScore; see its docstring for what is NaN when there are no episodes or no normal steps.

    Raises:
        TwinIDSError: for empty or misaligned arrays, values other than 0/1, or gamma outside [0, 1].
    """
    if not 0.0 <= gamma <= 1.0:
        raise TwinIDSError(f"gamma must be in [0, 1] (the weight of S_TTD), got {gamma!r}.")
    episodes = tuple(find_episodes(labels, alarms, groups))
    attack, alarm = _binary(labels, "labels"), _binary(alarms, "alarms")
    if attack.size == 0:
        raise TwinIDSError("the BATADAL score needs at least one scored step, got none.")
    tpr = _share(alarm[attack])
    tnr = _share(~alarm[~attack])
    ratios = [
        (episode.duration if episode.time_to_detection is None else episode.time_to_detection) / episode.duration
        for episode in episodes
    ]
    s_ttd = 1.0 - float(np.mean(ratios)) if ratios else float("nan")
    s_cm = (tpr + tnr) / 2.0
    return BatadalScore(
        score=gamma * s_ttd + (1.0 - gamma) * s_cm,
        s_ttd=s_ttd,
        s_cm=s_cm,
        tpr=tpr,
        tnr=tnr,
        episodes=episodes,
        gamma=gamma,
    )


def _binary(values: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    """A 1-D bool array from 0/1 or bool values, refusing anything else."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise TwinIDSError(f"{name} must be 1-D (one value per step), got shape {array.shape}.")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise TwinIDSError(
            f"{name} must be 0 (normal) or 1 (attack/alarm); got other values. Map class codes with `!= 0` first."
        )
    return array.astype(bool)


def _share(flags: np.ndarray) -> float:
    """Share of True values, NaN for an empty array."""
    return float(flags.mean()) if flags.size else float("nan")


def _plain(value: object) -> Hashable:
    """A numpy scalar as its Python value, so episodes compare and print plainly."""
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[return-value]
