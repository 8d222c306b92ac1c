"""What a concealment attacker may do to a test split: which channels and rows it writes, and within which limits.

The attacker sits on the channel between physical and virtual twin. During an attack (the test rows labelled
with an attack type) it rewrites the readings of the channels it controls; it never touches a row outside an
attack, a channel it does not control, or a `protected` channel (whose values are the attack's own). Every value
it writes lies in the channel's observed range on the training split's normal rows, and a channel with few
distinct values there (a pump's on/off status) only ever takes one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError, require_integer
from twinids.twin.network import TWIN_COMPUTED

ALL = "all"


@dataclass(frozen=True)
class ConcealmentSettings:
    """The attack-independent settings of `configs/concealment.yaml`, checked."""

    sensors: int | str
    controlled: tuple[str, ...] | None
    protected: tuple[str, ...]
    seed: int
    period: float
    discrete_values: int

    @classmethod
    def from_config(cls, cfg: Any) -> ConcealmentSettings:
        """Read the composed config; one error line naming the key for anything wrong."""
        sensors = cfg.sensors
        if sensors != ALL and (isinstance(sensors, bool) or not isinstance(sensors, int) or sensors < 1):
            raise TwinIDSError(f"sensors must be an integer >= 1 or all; got {sensors!r}")
        controlled = None if cfg.controlled is None else _names(cfg.controlled, "controlled")
        period = cfg.period
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise TwinIDSError(f"period must be a positive number (the daily cycle in time units); got {period!r}")
        return cls(
            sensors=sensors,
            controlled=controlled,
            protected=_names(cfg.protected, "protected"),
            seed=require_integer(cfg.seed, "seed", 0),
            period=float(period),
            discrete_values=require_integer(cfg.discrete_values, "discrete_values", 1),
        )


@dataclass(frozen=True)
class Threat:
    """The rows and channels an attacker rewrites, and the values it may write.

    Attributes:
        controlled: indices of the feature channels the attacker writes (protected ones excluded).
        rows: indices (into `WindowedData.rows`) of the test rows it rewrites: those of an attack.
        lower, upper: per feature, the observed range on normal training rows (scaled units).
        levels: per discrete controlled channel, the values it takes on normal training rows.
        normal_rows: indices of the normal training rows (what replay and the learned model read).
    """

    controlled: np.ndarray
    rows: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    levels: dict[int, np.ndarray]
    normal_rows: np.ndarray

    def editable(self, n_rows: int, n_features: int) -> np.ndarray:
        """A (rows, features) mask of the entries the attacker may change."""
        mask = np.zeros((n_rows, n_features), dtype=bool)
        mask[np.ix_(self.rows, self.controlled)] = True
        return mask

    def project(self, values: np.ndarray) -> np.ndarray:
        """Controlled readings (rows, len(controlled)) clipped to their ranges, discrete ones snapped to a level."""
        clipped = np.clip(values, self.lower[self.controlled], self.upper[self.controlled])
        for column, channel in enumerate(self.controlled):
            levels = self.levels.get(int(channel))
            if levels is not None:
                nearest = np.abs(clipped[:, column, None] - levels[None, :]).argmin(axis=1)
                clipped[:, column] = levels[nearest]
        return clipped

    def episodes(self) -> list[np.ndarray]:
        """The attacked rows cut into runs of consecutive row indices (one recorded attack each)."""
        if len(self.rows) == 0:
            return []
        cuts = np.flatnonzero(np.diff(self.rows) != 1) + 1
        return np.split(self.rows, cuts)


def threat_model(data: Any, settings: ConcealmentSettings) -> Threat:
    """The threat `settings` describe on `data`: channels drawn or named, attacked test rows, training limits.

    Raises:
        TwinIDSError: for unknown channel names, more sensors than channels, or a test split without attacks.
    """
    names = list(data.feature_names)
    computed = [name for name in names if name in TWIN_COMPUTED]
    if computed:
        raise TwinIDSError(
            f"this data holds columns the virtual twin computes from the delivered readings ({', '.join(computed)}): "
            "an attacker who rewrites readings would move them too, which twinids attack does not model; attack a "
            "detector trained without them (data.drop_features), naming the channels on the link (controlled=[...])"
        )
    if data.row_attacks is None:
        raise TwinIDSError("this data carries no per-row attack labels, so the attacked readings are unknown")
    protected = _indices(settings.protected, names, "protected")
    if settings.controlled is not None:
        chosen = _indices(settings.controlled, names, "controlled")
    else:
        count = len(names) if settings.sensors == ALL else int(settings.sensors)
        if count > len(names):
            raise TwinIDSError(f"sensors={count}, but this data has {len(names)} channels; use sensors=all or fewer")
        chosen = np.sort(np.random.default_rng(settings.seed).choice(len(names), size=count, replace=False))
    controlled = np.setdiff1d(chosen, protected)
    if len(controlled) == 0:
        raise TwinIDSError("every controlled channel is protected: the attacker would write nothing")
    test_rows = covered_rows(data.starts["test"], data.window)
    attacked = test_rows[data.row_attacks[test_rows] != 0]
    if len(attacked) == 0:
        raise TwinIDSError("the test split holds no attacked reading: there is nothing to conceal")
    train_rows = covered_rows(data.starts["train"], data.window)
    normal_rows = train_rows[data.row_attacks[train_rows] == 0]
    if len(normal_rows) < 2:
        raise TwinIDSError("the training split holds fewer than 2 normal readings: the attacker has no normal to copy")
    normal = data.rows[normal_rows]
    levels = {}
    for channel in controlled:
        values = np.unique(normal[:, channel])
        if len(values) <= settings.discrete_values:
            levels[int(channel)] = values
    return Threat(controlled, attacked, normal.min(axis=0), normal.max(axis=0), levels, normal_rows)


def covered_rows(starts: np.ndarray, window: int) -> np.ndarray:
    """The sorted rows that windows starting at `starts` read."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(starts[:, None] + np.arange(window)).astype(np.int64)


def channel_names(threat: Threat, names: Sequence[str]) -> list[str]:
    """The controlled channels by name."""
    return [names[int(channel)] for channel in threat.controlled]


def _indices(wanted: Sequence[str], names: list[str], key: str) -> np.ndarray:
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise TwinIDSError(f"{key} names {unknown}, which are not channels of this data; channels: {names}")
    return np.array(sorted(names.index(name) for name in wanted), dtype=np.int64)


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(item, str) for item in value):
        raise TwinIDSError(f"{key} must be a list of channel names, e.g. {key}=[L_T1,L_T2]; got {value!r}")
    return tuple(value)
