"""A stable hash of a resolved config, over the settings that change a result: it tags runs so sweeps can resume."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.tracking.provenance import canonical_json

CONFIG_HASH_TAG = "twinids.config_hash"  # every training run carries it; sweeps skip configs already FINISHED

# Keys (dotted; a key drops its whole subtree) that never change what a run learns or measures: where it is
# tracked and written, its name, and how much the trainer prints or logs.
RESULT_NEUTRAL_KEYS = (
    "tracking",
    "paths",
    "run_name",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
)


def config_hash(cfg: DictConfig, ignored: Sequence[str] = RESULT_NEUTRAL_KEYS) -> str:
    """16 hex digits of SHA-256 over the resolved config without the `ignored` keys.

    Stable across processes, key order and the spelling of whole numbers (`1` and `1.0` hash alike), so the
    same job composed twice, from a differently ordered command line or on another machine, hashes the same.
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in ignored:
        _drop(container, key.split("."))
    return hashlib.sha256(canonical_json(_normalise_numbers(container)).encode()).hexdigest()[:16]


def _drop(node: Any, path: list[str]) -> None:
    """Remove the key at `path` from nested dicts, if it is there."""
    head, *rest = path
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _drop(node[head], rest)
    else:
        del node[head]


def _normalise_numbers(node: Any) -> Any:
    """Integral floats become ints (`1.0` -> `1`), recursively; booleans and everything else are kept."""
    if isinstance(node, dict):
        return {key: _normalise_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_normalise_numbers(value) for value in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node
