"""Role views: the features one role's twin of a device reads (`data.view`, a role of `data.views` or a list).

A view only chooses columns: the frame's rows, splits and the rows the encoder is fitted on stay as they are, so a
view changes what a detector reads and nothing of how its data is cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from twinids.errors import TwinIDSError

EVERY_FEATURE = "every feature"  # how messages name `data.view=null`


@dataclass(frozen=True)
class View:
    """The features a detector reads (`features` None: every feature) and how messages name the view."""

    name: str  # `operator`, `every feature`, or a list given as such: `[sensor_primary, setpoint]`
    features: tuple[str, ...] | None
    key: str  # the config key that lists the features, for messages: `data.views.operator` or `data.view`

    def select(self, columns: Sequence[str]) -> list[str]:
        """The view's columns among a frame's feature `columns`, in frame order; names the frame lacks are refused."""
        if self.features is None:
            return list(columns)
        unknown = [name for name in self.features if name not in columns]
        if unknown:
            raise TwinIDSError(
                f"{self.key} names {unknown}, which are not features of this data; its features: {list(columns)}"
            )
        return [column for column in columns if column in self.features]


def resolve_view(data_cfg: Any) -> View:
    """The view `data.view` chooses among `data.views` (both keys required; their defaults live in the YAML).

    Raises:
        TwinIDSError: an unknown role, an empty view, or a view that is not a role, a list of names or null.
    """
    chosen, roles = _plain(data_cfg["view"]), _plain(data_cfg["views"]) or {}
    if not isinstance(roles, Mapping):
        raise TwinIDSError(f"data.views must map role names to lists of features; got {roles!r}")
    if chosen is None:
        return View(EVERY_FEATURE, None, "data.view")
    if isinstance(chosen, str):
        if chosen not in roles:
            raise TwinIDSError(f"unknown data.view '{chosen}'; valid: {_valid_views(roles)}")
        return View(chosen, _names(roles[chosen], f"data.views.{chosen}"), f"data.views.{chosen}")
    if isinstance(chosen, list):
        features = _names(chosen, "data.view")
        return View(f"[{', '.join(features)}]", features, "data.view")
    raise TwinIDSError(
        f"data.view must be a role name or a list of features; got {chosen!r}; valid: {_valid_views(roles)}"
    )


def check_same_view(trained_data: Mapping[str, Any], data_cfg: Any, what: str) -> None:
    """Refuse reading a detector trained on one view with another: it would be handed columns it never learned.

    `trained_data` is the `data` node stored with the run (a run from before views read every feature).

    Raises:
        TwinIDSError: naming the run's view and the one asked for.
    """
    trained = resolve_view({"view": trained_data.get("view"), "views": trained_data.get("views")})
    asked = resolve_view(data_cfg)
    if _feature_set(trained) != _feature_set(asked):
        was, now = (_spelled(trained), _spelled(asked)) if trained.name == asked.name else (trained.name, asked.name)
        raise TwinIDSError(
            f"{what} was trained on view {was} and cannot read view {now}: a detector reads only its own view's "
            f"features; use data.view as trained (drop the override), or train one on {asked.name}"
        )


def _spelled(view: View) -> str:
    """A view with its features, for two views of one name (a role whose list was changed)."""
    return f"{view.name} ({', '.join(view.features or ())})"


def _feature_set(view: View) -> frozenset[str] | None:
    return None if view.features is None else frozenset(view.features)


def _valid_views(roles: Mapping[str, Any]) -> str:
    """The choices of `data.view` in a message."""
    named = " | ".join(roles) if roles else "(this data names no roles in data.views)"
    return f"{named}; or null (every feature), or a list of features, e.g. data.view=[sensor_primary,setpoint]"


def _names(value: Any, key: str) -> tuple[str, ...]:
    """A non-empty list of distinct feature names under `key`."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TwinIDSError(f"{key} must be a list of feature names, e.g. [sensor_primary,setpoint]; got {value!r}")
    if not value:
        raise TwinIDSError(f"{key} is empty: a view reads at least one feature (null: every feature)")
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        raise TwinIDSError(f"{key} names {repeated} more than once")
    return tuple(value)


def _plain(value: Any) -> Any:
    """A config value as plain Python (lists and dicts out of OmegaConf)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value
