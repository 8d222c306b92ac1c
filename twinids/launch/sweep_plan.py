"""Expand sweep overrides (`model=lstm,random_forest seed=range(3)`) into the jobs of a sweep, with Hydra's parser.

Only the plan: each job is the list of plain overrides one `train` call receives. Lists, `range()` and
`glob()` over a config group's options are expanded; the cartesian product keeps the order they were given in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twinids.errors import TwinIDSError, first_line

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def expand_sweep(overrides: Sequence[str], group_options: Callable[[str], list[str]] | None = None) -> list[list[str]]:
    """The jobs of a sweep: the cartesian product of every swept override, each job a list of plain overrides.

    Args:
        overrides: Hydra overrides, some of them sweeps (`a=1,2`, `seed=range(3)`, `model=glob(lstm*)`).
        group_options: the options of a config group (default: `twinids.config.group_options`); a key with
            options is a group, and each option it is set to must be one of them.

    Raises:
        TwinIDSError: for an override Hydra cannot parse, a group option that does not exist, a glob that
            matches no option, a glob on a key that is not a group, or an `interval()` (a search space, not a list).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if group_options is None:
        from twinids.config import group_options
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.append(parser.parse_override(text))
        except HydraException as error:
            raise TwinIDSError(f"cannot parse override '{text}': {first_line(error)}") from error
    choices = [_choices(override, group_options) for override in parsed]
    return [list(job) for job in itertools.product(*choices)]


def _choices(override: Override, group_options: Callable[[str], list[str]]) -> list[str]:
    """The plain overrides one parsed override stands for: itself, or one per value it sweeps over."""
    from hydra.core.override_parser.types import ValueType

    key = override.get_key_element()
    group = override.key_or_group
    options = group_options(group) if override.type.name != "DEL" else []
    if not override.is_sweep_override():
        if options:
            _check_options(override.input_line, group, [override.get_value_element_as_str()], options)
        return [override.input_line]
    if override.value_type == ValueType.INTERVAL_SWEEP:
        raise TwinIDSError(
            f"'{override.input_line}': interval() is a search space for tuning, not a sweep; "
            "list the values (a=1,2,4) or use range()"
        )
    if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
        if not options:
            raise TwinIDSError(
                f"'{override.input_line}': glob() selects options of a config group; '{group}' is not one"
            )
        values = override.value().filter(options)
        if not values:
            raise TwinIDSError(
                f"'{override.input_line}' matches no option of config group '{group}'; options: {', '.join(options)}"
            )
        return [f"{key}={value}" for value in values]
    values = list(override.sweep_string_iterator())
    if options:
        _check_options(override.input_line, group, values, options)
    return [f"{key}={value}" for value in values]


def _check_options(text: str, group: str, values: list[str], options: list[str]) -> None:
    unknown = [value for value in values if value not in options and value != "null"]
    if unknown:
        raise TwinIDSError(
            f"'{text}': unknown option '{unknown[0]}' for config group '{group}'; options: {', '.join(options)}"
        )
