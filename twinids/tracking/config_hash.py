"""Stable hashes of a resolved config: `config_hash` tags runs so sweeps can resume, `repeat_hash` tells which
runs are repeats of one another (the same settings, another seed) so `compare` averages only those."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.tracking.provenance import canonical_json

CONFIG_HASH_TAG = "twinids.config_hash"  # every training run carries it; sweeps skip configs already FINISHED
REPEAT_HASH_TAG = "twinids.repeat_hash"  # equal for runs whose settings differ in their seeds alone

# Keys (dotted; a key drops its whole subtree) that never change what a run learns or measures: where it is
# tracked and written, its name, how much the trainer prints or logs, and what only `twinids attack` reads.
RESULT_NEUTRAL_KEYS = (
    "tracking",
    "data.link",
    "data.plcs",
    "paths",
    "run_name",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
)
# Repeats may also read their data from different folders: the data fingerprint says whether the data is the same.
REPEAT_NEUTRAL_KEYS = (*RESULT_NEUTRAL_KEYS, "data.root", "data.source.root")
# Nodes that change nothing while their switch (the key named) is 0 or unset, left out of both hashes then, like a
# null key: the one-run audit without canaries, weight averaging without a decay. Runs from before such a node
# existed keep their hashes.
INERT_WHEN_OFF = {"privacy.audit": "canaries", "callbacks.weight_averaging": "decay"}
# Catalogues read only through another key (node -> that key, both dotted from the root): left out of both hashes
# while the key is unset, so runs from before the catalogue existed keep their hashes (the roles' feature lists
# while no view is chosen).
READ_THROUGH = {"data.views": "data.view"}
# Filled in by the detector from other settings (the transfer source) after the run's tags are set, so the
# repeat hash of a new run never holds it; left out of the hash an old run's params give for the same reason.
DERIVED_KEYS = ("transfer.plan",)
NOT_REPEAT_SETTINGS = frozenset((*REPEAT_NEUTRAL_KEYS, *DERIVED_KEYS))
# The last part of a key that holds a seed: the run's `seed`, and the seeds splits and estimators are given.
SEED_NAMES = ("seed", "random_state")
UNSET_VALUES = ("", "None", "null")  # how a flattened config logs an unset value
WHOLE_NUMBER = re.compile(r"-?\d+\.0+")


def config_hash(cfg: DictConfig, ignored: Sequence[str] = RESULT_NEUTRAL_KEYS) -> str:
    """16 hex digits of SHA-256 over the resolved config without the `ignored` keys and without unset (null) keys.

    Stable across processes, key order and the spelling of whole numbers (`1` and `1.0` hash alike), so the
    same job composed twice, from a differently ordered command line or on another machine, hashes the same. A
    key set to null hashes as if it were not there, so a setting added to configs/ later, off by default, leaves
    the hashes of earlier jobs (and a sweep's reuse of their runs) as they were.
    """
    container = _without_nulls(OmegaConf.to_container(cfg, resolve=True))
    for node, switch in INERT_WHEN_OFF.items():
        path = node.split(".")
        if not _lookup(container, [*path, switch]):
            _drop(container, path)
    for node, key in READ_THROUGH.items():
        if _lookup(container, key.split(".")) is None:
            _drop(container, node.split("."))
    for key in ignored:
        _drop(container, key.split("."))
    return hashlib.sha256(canonical_json(_normalise_numbers(container)).encode()).hexdigest()[:16]


def hash_tags(cfg: DictConfig) -> dict[str, str]:
    """The tags a training run carries to be found again: its config hash and its repeat hash."""
    return {CONFIG_HASH_TAG: config_hash(cfg), REPEAT_HASH_TAG: repeat_hash(cfg)}


def repeat_hash(cfg: DictConfig) -> str:
    """16 hex digits, equal for configs that differ only in seeds (see SEED_NAMES) and result-neutral keys.

    Computed from the config flattened exactly as it is logged as MLflow params, so the hash of a run logged
    without the `twinids.repeat_hash` tag, recomputed from its params by `repeat_hash_of_params`, is the same.
    """
    return repeat_hash_of_params(config_params(cfg))


def repeat_hash_of_params(params: Mapping[str, object]) -> str:
    """The repeat hash of a run from its logged params (`model/name` -> value), as `repeat_hash` gives it."""
    return hashlib.sha256(canonical_json(repeat_settings(params)).encode()).hexdigest()[:16]


def repeat_settings(params: Mapping[str, object]) -> dict[str, str]:
    """The params that decide whether two runs are repeats, dotted (`model.name`) and with numbers normalised.

    Left out: seeds, REPEAT_NEUTRAL_KEYS, DERIVED_KEYS, unset values (a key logged as `None` and a key not
    logged at all are alike), nodes switched off (INERT_WHEN_OFF), and params whose name holds a dot: a flattened
    config key never does (OmegaConf reads a dot as nesting), so those are results logged after training
    (`privacy.epsilon`), not settings.
    """
    settings = {}
    for name, value in params.items():
        if "." in name or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key, text = name.replace("/", "."), str(value)
        if text in UNSET_VALUES or is_seed_key(key) or _under(key, NOT_REPEAT_SETTINGS):
            continue
        settings[key] = _canonical_text(text)
    off = switched_off(settings)
    return {key: value for key, value in settings.items() if not _under(key, off)}


def switched_off(settings: Mapping[str, object]) -> frozenset[str]:
    """The INERT_WHEN_OFF nodes whose switch is off (0, unset, or absent), and the READ_THROUGH catalogues whose
    key is unset, in flat dotted `settings`."""
    inert = {
        node for node, switch in INERT_WHEN_OFF.items() if str(settings.get(f"{node}.{switch}")) in ("0", *UNSET_VALUES)
    }
    unread = {node for node, key in READ_THROUGH.items() if str(settings.get(key)) in UNSET_VALUES}
    return frozenset(inert | unread)


def is_seed_key(key: str) -> bool:
    """Whether a dotted config key holds a seed: what a comparison averages over, never what sets runs apart."""
    return key.rsplit(".", 1)[-1] in SEED_NAMES


def config_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config flattened as Lightning's MLflow logger logs it: `a/b` keys, `str(value)` values.

    Nested dicts and lists of dicts are flattened (list items by index); other lists stay one value; an empty
    dict or list logs nothing. Values are not cut to MLflow's length limit: the hash should see all of them.
    """
    flat: dict[str, str] = {}
    _flatten(OmegaConf.to_container(cfg, resolve=True), "", flat)
    return flat


def _flatten(node: Any, prefix: str, flat: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}/{key}" if prefix else str(key), flat)
    elif isinstance(node, list) and all(isinstance(item, dict) for item in node):
        for index, item in enumerate(node):
            _flatten(item, f"{prefix}/{index}", flat)
    else:
        flat[prefix] = str(node)


def _under(key: str, roots: frozenset[str]) -> bool:
    """Whether dotted `key` is one of `roots` or inside one (`tracking.uri` is under `tracking`)."""
    parts = key.split(".")
    return any(".".join(parts[: length + 1]) in roots for length in range(len(parts)))


def _canonical_text(text: str) -> str:
    """A logged value with whole numbers spelled one way (`1.0` -> `1`, as `config_hash` treats them)."""
    return text.split(".", 1)[0] if WHOLE_NUMBER.fullmatch(text) else text


def _lookup(node: Any, path: list[str]) -> Any:
    """The value at `path` in nested dicts, or None where the path is not there."""
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _drop(node: Any, path: list[str]) -> None:
    """Remove the key at `path` from nested dicts, if it is there."""
    head, *rest = path
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _drop(node[head], rest)
    else:
        del node[head]


def _without_nulls(node: Any) -> Any:
    """Nested dicts without their null values, recursively (lists are kept as they are)."""
    if isinstance(node, dict):
        return {key: _without_nulls(value) for key, value in node.items() if value is not None}
    return node


def _normalise_numbers(node: Any) -> Any:
    """Integral floats become ints (`1.0` -> `1`), recursively; booleans and everything else are kept."""
    if isinstance(node, dict):
        return {key: _normalise_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_normalise_numbers(value) for value in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node
