"""What a checkpoint carries besides weights: the job's config, overrides, classes, features and privacy spent.

Stored as plain types only (dicts, lists, strings, numbers), so checkpoints load with
`torch.load(weights_only=True)` and a crafted file cannot run code on the machine that evaluates it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError

CARD_KEY = "twinids"


@dataclass
class ModelCard:
    """Enough to rebuild a trained detector, its data and its claims from a checkpoint alone."""

    config: dict[str, Any]
    overrides: list[str]
    class_names: list[str]
    feature_names: list[str]
    attack_names: list[str]
    run_id: str
    privacy: dict[str, Any] | None = None

    @classmethod
    def describe(cls, cfg: DictConfig, overrides: list[str], data: Any, run_id: str) -> ModelCard:
        """The card of a job training on `data` (a WindowedData) as `cfg` says."""
        return cls(
            config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            overrides=list(overrides),
            class_names=list(data.class_names),
            feature_names=list(data.feature_names),
            attack_names=list(data.attack_names),
            run_id=run_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain types, as stored in the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Path) -> ModelCard:
        """Read a stored card (older checkpoints may lack attack names, feature names or privacy)."""
        try:
            return cls(
                config=_upgraded(dict(values["config"])),
                overrides=list(values["overrides"]),
                class_names=list(values["class_names"]),
                feature_names=list(values.get("feature_names") or []),
                attack_names=list(values.get("attack_names") or []),
                run_id=str(values.get("run_id", "")),
                privacy=values.get("privacy"),
            )
        except (KeyError, TypeError) as error:
            raise TwinIDSError(f"{source} holds an incomplete twinids model card ({error})") from None


# Checkpoints written before detectors were config targets name their kind by a word.
_DETECTOR_CLASSES_BEFORE_TARGETS = {
    "lightning": "twinids.training.lightning_detector.LightningDetector",
    "sklearn": "twinids.training.sklearn_detector.SklearnDetector",
    "physics": "twinids.training.physics_detector.PhysicsResidualDetector",
}


_SIMULATOR = "twinids.twin.simulate_network"


def _upgraded(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config in today's form, saying what an older run did: its `model.detector: <word>` becomes its
    `_target_` node; without `callbacks.select` it tested the best checkpoint; without `privacy.audit` (or its
    `kind` and `delta`) a run had no canaries, or white-box ones at the run's δ; without `data.holdout_attacks` it
    held none out; without `data.view` it read every feature; a simulator without `replica` ran the plant's own
    noise (so `--resume` and `eval` of runs from before these settings work as they did)."""
    model = config.get("model")
    if isinstance(model, dict) and isinstance(model.get("detector"), str):
        target = _DETECTOR_CLASSES_BEFORE_TARGETS.get(model["detector"], model["detector"])
        config = {**config, "model": {**model, "detector": {"_target_": target}}}
    callbacks = config.get("callbacks")
    if isinstance(callbacks, dict) and "select" not in callbacks:
        config = {**config, "callbacks": {**callbacks, "select": "best"}}
    data = config.get("data")
    if isinstance(data, dict) and "holdout_attacks" not in data:
        config = {**config, "data": {**data, "holdout_attacks": None}}  # every attack type was trained on
        data = config["data"]
    if isinstance(data, dict) and "view" not in data:
        config = {**config, "data": {**data, "view": None, "views": {}}}  # it read every feature
    source = config.get("data", {}).get("source")
    if isinstance(source, dict) and source.get("_target_") == _SIMULATOR and "replica" not in source:
        config = {**config, "data": {**config["data"], "source": {**source, "replica": None}}}  # the plant's own run
    privacy = config.get("privacy")
    if isinstance(privacy, dict):
        delta = privacy.get("delta", 1.0e-5)  # a DP run's own δ; without canaries (all older non-private runs) unused
        audit = {"canaries": 0, "kind": "white_box", "seed": 0, "delta": delta, **privacy.get("audit", {})}
        if privacy.get("name") == "dp" and "score" not in audit:
            audit["score"] = "sum"  # white-box canaries' residuals were summed then
        config = {**config, "privacy": {**privacy, "audit": audit}}
    return config
