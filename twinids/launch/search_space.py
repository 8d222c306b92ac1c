"""A tuning search space (`configs/search/<name>.yaml`): the metric to optimise and how each config key varies.

```yaml
metric: val/f1_macro          # a metric the runs log; the best value over a run's epochs is the trial's value
direction: maximize           # or minimize
n_trials: 20
overrides: [model=lstm]       # fixed for every trial (command-line overrides come after them)
sampler: {seed: 0}            # TPE sampler
pruner: {n_startup_trials: 3, n_warmup_steps: 1}   # median pruner on the metric per epoch; `pruner: null` turns it off
params:
  model.module.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  model.module.net.hidden_size: {type: categorical, choices: [16, 32, 64]}
  model.module.net.num_layers: {type: int, low: 1, high: 3}
```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinids.errors import TwinIDSError

SEARCH_GROUP = "search"
PARAM_TYPES = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")
KNOWN_KEYS = {"metric", "direction", "n_trials", "overrides", "sampler", "pruner", "params"}


@dataclass(frozen=True)
class SearchParam:
    """One config key and the values a trial may give it."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks for this key."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)


@dataclass(frozen=True)
class SearchSpace:
    """A parsed search space file."""

    name: str
    path: Path
    metric: str
    direction: str
    n_trials: int
    params: list[SearchParam]
    overrides: list[str] = field(default_factory=list)
    sampler_seed: int | None = None
    pruner: dict[str, int] | None = None

    def suggest(self, trial: Any) -> list[str]:
        """The overrides of one trial: `key=value` for every parameter, in the file's order."""
        return [f"{param.key}={override_value(param.suggest(trial))}" for param in self.params]

    def fingerprint(self, overrides: list[str]) -> str:
        """8 hex digits over what defines the study: fixed overrides, metric, direction and every parameter."""
        content = {"overrides": overrides, "metric": self.metric, "direction": self.direction}
        content["params"] = [vars(param) | {"choices": list(param.choices)} for param in self.params]
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:8]


def override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back (`true`, `null`, `0.001`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def load_search_space(name: str) -> SearchSpace:
    """Read and check `search/<name>.yaml` from the config search path.

    Raises:
        TwinIDSError: for an unknown name (listing those there are) or a file that is not a valid search space,
            naming the file and the key.
    """
    from twinids.config import config_file, group_options, load_spec

    path = config_file(SEARCH_GROUP, name)
    if path is None:
        options = ", ".join(group_options(SEARCH_GROUP)) or "(none)"
        raise TwinIDSError(f"no search space '{name}' (configs/search/{name}.yaml); search spaces: {options}")
    raw = load_spec(path, "a search space is a mapping with metric, direction, n_trials and params", KNOWN_KEYS)
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise TwinIDSError(f"{path}: direction must be maximize or minimize; got {direction!r}")
    n_trials = raw.get("n_trials", 20)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise TwinIDSError(f"{path}: n_trials must be an integer >= 1; got {n_trials!r}")
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise TwinIDSError(f"{path}: params must map config keys to {{type: float|int|categorical, ...}}")
    sampler, pruner = raw.get("sampler") or {}, raw.get("pruner", {})
    return SearchSpace(
        name=name,
        path=path,
        metric=str(raw.get("metric", "val/f1_macro")),
        direction=direction,
        n_trials=n_trials,
        params=[_param(path, str(key), spec) for key, spec in params.items()],
        overrides=[str(item) for item in raw.get("overrides") or []],
        sampler_seed=sampler.get("seed"),
        pruner=None if pruner is None else {key: int(value) for key, value in pruner.items()},
    )


def _param(path: Path, key: str, spec: Any) -> SearchParam:
    """One parameter, checked: its type and the bounds or choices that type needs."""
    where = f"{path}: params.{key}"
    if not isinstance(spec, dict) or spec.get("type") not in PARAM_TYPES:
        raise TwinIDSError(f"{where}: give type: float, int or categorical")
    if spec["type"] == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TwinIDSError(f"{where}: a categorical parameter needs a non-empty list of choices")
        return SearchParam(key, "categorical", choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low >= high:
        raise TwinIDSError(f"{where}: needs numbers low < high; got low={low!r}, high={high!r}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise TwinIDSError(f"{where}: log: true needs low > 0; got low={low!r}")
    return SearchParam(key, spec["type"], float(low), float(high), log, spec.get("step"))
