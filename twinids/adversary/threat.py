"""What a concealment attacker may do to a test split: which channels and rows it writes, and within which limits.

The attacker sits on the channel between physical and virtual twin. During an attack (the test rows labelled
with an attack type) it rewrites the readings of the channels it controls; it never touches a row outside an
attack, a channel it does not control, or a `protected` channel (whose values are the attack's own). Every value
it writes lies in the range its sensor (the channel on the row's device) shows on the training split's normal rows,
and a channel with few distinct values there (a pump's on/off status) only ever takes one of them.

Where the data holds columns a twin computes from the readings (the simulator's `twin_*` and `residual_*`), the
data config's `link` says which channels a packet carries and how the computed ones follow them (`Link`); the
attacker writes only the former, and the job recomputes the latter from what it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Protocol

import numpy as np

from twinids.errors import TwinIDSError, require_integer
from twinids.twin.network import TWIN_COMPUTED

ALL = "all"


@dataclass(frozen=True)
class ConcealmentSettings:
    """The attack-independent settings of `configs/concealment.yaml`, checked."""

    sensors: int | str
    controlled: tuple[str, ...] | None
    plc: str | None
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
        plc = cfg.plc
        if plc is not None and (not isinstance(plc, str) or controlled is not None):
            raise TwinIDSError(
                f"plc must be one controller's name (e.g. plc=PLC3), and names the channels itself: give it or "
                f"controlled=[...], not both; got plc={plc!r}"
            )
        period = cfg.period
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise TwinIDSError(f"period must be a positive number (the daily cycle in time units); got {period!r}")
        return cls(
            sensors=sensors,
            controlled=controlled,
            plc=plc,
            protected=_names(cfg.protected, "protected"),
            seed=require_integer(cfg.seed, "seed", 0),
            period=float(period),
            discrete_values=require_integer(cfg.discrete_values, "discrete_values", 1),
        )


class Link(Protocol):
    """The channels a packet carries and the columns a twin computes from them (e.g. `twinids.twin.link`)."""

    channels: np.ndarray  # feature indices the attacker on the link may write
    derived: np.ndarray  # feature indices computed from them, recomputed after every rewrite

    def recompute(self, rows: np.ndarray) -> np.ndarray:
        """`rows` with the derived columns recomputed from the (rewritten) readings."""
        ...

    def follow(self, rows: Any) -> Any:
        """Torch rows as `recompute` gave them, the derived columns carrying their readings' gradient."""
        ...

    def downstream(self, written: np.ndarray) -> np.ndarray:
        """Per row, whether its derived columns can change when the rows `written` are rewritten."""
        ...


@dataclass(frozen=True)
class Threat:
    """The rows and channels an attacker rewrites, and the values it may write.

    Attributes:
        controlled: indices of the feature channels the attacker writes (protected ones excluded).
        rows: indices (into `WindowedData.rows`) of the test rows it rewrites: those of an attack.
        lower, upper: per attacked row (aligned with `rows`) and feature, the range the row's device shows on
            normal training rows (scaled units; the range of every device where this one has no training rows).
        levels: per discrete controlled channel, the values it takes on normal training rows.
        normal_rows: indices of the normal training rows (what replay and the learned model read).
        derived: indices of the channels computed from the readings (never written; the link recomputes them).
        link: how the derived channels follow the readings (None: every channel is a reading on the link).
    """

    controlled: np.ndarray
    rows: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    levels: dict[int, np.ndarray]
    normal_rows: np.ndarray
    derived: np.ndarray = dataclass_field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    link: Link | None = None

    def editable(self, n_rows: int, n_features: int) -> np.ndarray:
        """A (rows, features) mask of the entries the attacker may change."""
        mask = np.zeros((n_rows, n_features), dtype=bool)
        mask[np.ix_(self.rows, self.controlled)] = True
        return mask

    def bounds(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The (lower, upper) limits of the controlled channels at attacked `rows` (data row indices; None: all)."""
        at = slice(None) if rows is None else np.searchsorted(self.rows, rows)
        return self.lower[at][:, self.controlled], self.upper[at][:, self.controlled]

    def project(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Controlled readings (rows, len(controlled)) at attacked `rows` (None: all of them, in order) clipped to
        their limits, discrete ones snapped to a level."""
        lower, upper = self.bounds(rows)
        clipped = np.clip(values, lower, upper)
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


def threat_model(data: Any, settings: ConcealmentSettings, link: Link | None = None) -> Threat:
    """The threat `settings` describe on `data`: channels drawn or named, attacked test rows, training limits.

    With a `link`, only its channels can be controlled, and its derived channels follow what the attacker writes.

    Raises:
        TwinIDSError: for unknown channel names, more sensors than channels, or a test split without attacks.
    """
    names = list(data.feature_names)
    computed = [name for name in names if name in TWIN_COMPUTED]
    if computed and link is None:
        raise TwinIDSError(
            f"this data holds columns the virtual twin computes from the delivered readings ({', '.join(computed)}), "
            "and its config names no data.link that recomputes them (a run trained before twinids attack knew the "
            "simulator's links): train the detector again, or attack one trained without them (data.drop_features)"
        )
    if data.row_attacks is None:
        raise TwinIDSError("this data carries no per-row attack labels, so the attacked readings are unknown")
    link_channels = np.arange(len(names)) if link is None else np.asarray(link.channels, dtype=np.int64)
    if len(link_channels) == 0:
        raise TwinIDSError(
            "this data keeps none of the channels a packet carries (its data.view or data.drop_features removed them "
            "all, as the security view does): the attacker has nothing to write"
        )
    on_link = [names[int(channel)] for channel in link_channels]
    protected = _indices(settings.protected, names, "protected")
    if settings.controlled is not None:
        what = "channels of this data" if link is None else "channels an attacker on this data's link writes"
        chosen = link_channels[_indices(settings.controlled, on_link, "controlled", what)]
    else:
        count = len(link_channels) if settings.sensors == ALL else int(settings.sensors)
        if count > len(link_channels):
            has = (
                f"this data has {len(names)} channels"
                if link is None
                else f"an attacker on this data's link writes {len(link_channels)} channels ({', '.join(on_link)})"
            )
            raise TwinIDSError(f"sensors={count}, but {has}; use sensors=all or fewer")
        chosen = link_channels[
            np.random.default_rng(settings.seed).choice(len(link_channels), size=count, replace=False)
        ]
    controlled = np.setdiff1d(np.sort(chosen), protected)
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
    lower, upper = _device_ranges(data, normal_rows, attacked)
    derived = np.zeros(0, dtype=np.int64) if link is None else np.asarray(link.derived, dtype=np.int64)
    return Threat(controlled, attacked, lower, upper, levels, normal_rows, derived, link)


def _device_ranges(data: Any, normal_rows: np.ndarray, attacked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per attacked row, the range each channel shows on its device's normal training rows (all devices' range for
    a device with fewer than 2 of them, e.g. a test device of a by-device split)."""
    normal = data.rows[normal_rows]
    lower = np.repeat(normal.min(axis=0)[None, :], len(attacked), axis=0)
    upper = np.repeat(normal.max(axis=0)[None, :], len(attacked), axis=0)
    if data.row_devices is None:
        return lower, upper
    for device in np.unique(data.row_devices[attacked]):
        own = normal[data.row_devices[normal_rows] == device]
        if len(own) >= 2:
            at = data.row_devices[attacked] == device
            lower[at], upper[at] = own.min(axis=0), own.max(axis=0)
    return lower, upper


def covered_rows(starts: np.ndarray, window: int) -> np.ndarray:
    """The sorted rows that windows starting at `starts` read."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(starts[:, None] + np.arange(window)).astype(np.int64)


def channel_names(threat: Threat, names: Sequence[str]) -> list[str]:
    """The controlled channels by name."""
    return [names[int(channel)] for channel in threat.controlled]


def _indices(wanted: Sequence[str], names: list[str], key: str, what: str = "channels of this data") -> np.ndarray:
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise TwinIDSError(f"{key} names {unknown}, which are not {what}; they are: {names}")
    return np.array(sorted(names.index(name) for name in wanted), dtype=np.int64)


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(item, str) for item in value):
        raise TwinIDSError(f"{key} must be a list of channel names, e.g. {key}=[L_T1,L_T2]; got {value!r}")
    return tuple(value)
