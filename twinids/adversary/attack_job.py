"""`conceal_run(run_id)`: a concealment attack on a tracked detector, logged as a new run linked to it.

The detector and its data are rebuilt from the config stored in the checkpoint. The attack rewrites the test
split's attacked readings of the channels it controls (`twinids.adversary.threat`); the job checks that nothing
else changed and that every written value is allowed, then tests the same checkpoint on the rewritten data. The
run holds `test/*` after concealment, `clean/*` before it (the same test on the untouched data), the attack's
settings as `attack.*` params, and tag `twinids.source_run_id`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinids.adversary.threat import ConcealmentSettings, Threat, channel_names, threat_model
from twinids.errors import TwinIDSError

ATTACK_JOB = "attack"
SOURCE_TAG = "twinids.source_run_id"
# the source run and the attack's settings, hashed: what `reproduce` finds finished runs by
KEY_TAG = "twinids.attack.key"
CONTROLLED_TAG = "twinids.attack.controlled"  # the channels drawn (a tag: they change with the seed)


@dataclass(frozen=True)
class AttackResult:
    """What an attack run logged: metrics after (`test/*`) and before (`clean/*`), its run id, the channels."""

    metrics: dict[str, float]
    run_id: str
    controlled: list[str]


class UnloggedRun:
    """A run stand-in for testing a detector without logging: the attack job logs the figures itself, prefixed."""

    logger = False  # Lightning: no logger

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Drop the metrics (the caller logs the report it gets back)."""


def attack_settings(overrides: Sequence[str]) -> tuple[Any, ConcealmentSettings]:
    """configs/concealment.yaml with the command's overrides, and its checked attack-independent part."""
    from twinids.config import compose

    cfg = compose(list(overrides), config_name="concealment")
    return cfg, ConcealmentSettings.from_config(cfg)


def attack_key(run_id: str, cfg: Any) -> str:
    """The key of this attack (resolved settings `cfg`) on detector run `run_id` (`tracking.follow_up`)."""
    from twinids.tracking.follow_up import follow_up_key

    return follow_up_key(run_id, cfg)


def finished_attack(run_id: str, overrides: Sequence[str], tracking_uri: str) -> str | None:
    """The id of a finished run of this attack on this detector run, if the store holds one."""
    from twinids.tracking.follow_up import finished_follow_up

    cfg, _ = attack_settings(overrides)
    return finished_follow_up(KEY_TAG, attack_key(run_id, cfg), tracking_uri)


def conceal_run(
    run_id: str,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
) -> AttackResult:
    """Attack the detector a training run logged and log the detection before and after as a new run."""
    from omegaconf import OmegaConf, open_dict

    from twinids.config import build
    from twinids.data.registry import build_windows
    from twinids.tracking.queries import download_checkpoint
    from twinids.tracking.run import start_run, temporary_directory
    from twinids.training.checkpoint_io import read_card
    from twinids.training.evaluate import check_compatible
    from twinids.training.job import job_tags, log_confusion, log_privacy, provenance, quiet_tracking

    quiet_tracking()
    attack_cfg, settings = attack_settings(overrides)
    method_cfg = attack_cfg.method.copy()
    with open_dict(method_cfg):
        method_name = str(method_cfg.pop("name"))
    method = build(method_cfg, f"method={method_name}")
    with temporary_directory() as scratch:
        checkpoint = download_checkpoint(run_id, Path(scratch), tracking_uri)
        card = read_card(checkpoint)
        cfg = OmegaConf.create(card.config)
        data = build_windows(cfg.data)  # every split: limits, replay and the learned model read training rows
        check_compatible(card.feature_names, card.class_names, data.feature_names, data.class_names)
        if settings.plc is not None:
            settings = dataclasses.replace(
                settings, controlled=plc_channels(cfg.data, settings.plc, data.feature_names)
            )
        threat = threat_model(data, settings, _link(cfg.data, data))
        clean, detector = _test(cfg, data, checkpoint, card, Path(scratch))
        began = time.perf_counter()
        rows = method.conceal(data, threat, settings, detector, str(cfg.model.name))
        seconds = time.perf_counter() - began
        changed = check_within_threat(data.rows, rows, threat)
        rows = followed(rows, threat)
        concealed, _ = _test(cfg, dataclasses.replace(data, rows=rows), checkpoint, card, Path(scratch))
        controlled = channel_names(threat, data.feature_names)
        logged = OmegaConf.to_container(attack_cfg, resolve=True)
        method_settings = {key: value for key, value in logged.pop("method").items() if key != "name"}
        logged.update(method=method_name, settings=method_settings, controlled_count=len(controlled))
        params = {"attack": logged}
        figures = {
            **concealed.metrics,
            "test/recall_attacked": attacked_recall(concealed.confusion),
            **{"clean/" + key.split("/", 1)[1]: value for key, value in clean.metrics.items()},
            "clean/recall_attacked": attacked_recall(clean.confusion),
            "attack/seconds": seconds,
            "attack/readings_changed": float(changed.sum()),
            "attack/mean_abs_change": float(np.abs(rows - data.rows)[changed].mean()) if changed.any() else 0.0,
            "attack/readings_attacked": float(len(threat.rows) * len(threat.controlled)),
        }
        steps = getattr(method, "steps_taken", None)
        if steps is not None:
            figures["attack/steps"] = float(steps)
        run_tags = {
            **job_tags(cfg, ATTACK_JOB, card.privacy),
            **provenance(cfg, data),
            SOURCE_TAG: card.run_id or run_id,
            KEY_TAG: attack_key(card.run_id or run_id, attack_cfg),
            CONTROLLED_TAG: ",".join(controlled),
            **(tags or {}),
        }
        with start_run(cfg.tracking.mlflow_experiment, tracking_uri or cfg.tracking.uri, None, run_tags) as run:
            run.log_config(cfg, list(card.overrides))
            run.log_params(params)  # nested: logged as attack/method, attack/sensors, ... (config keys, not results)
            log_privacy(run, card.privacy)
            run.log_metrics(figures, step=0)
            log_confusion(run, concealed.confusion, data.class_names)
    return AttackResult(figures, run.run_id, controlled)


def _link(data_cfg: Any, data: Any) -> Any:
    """The data config's link (`data.link`: the packet's channels and the twin columns that follow them), if any."""
    from twinids.config import build

    node = _source_setting(data_cfg, "link")
    return None if node is None else build(node, "data.link")(source=data_cfg.source, data=data)


def plc_channels(data_cfg: Any, plc: str, features: Sequence[str]) -> tuple[str, ...]:
    """The channels controller `plc` reports (`data.plcs`) that the detector reads.

    Raises:
        TwinIDSError: for data that names no PLCs, an unknown PLC, or one none of whose channels the detector reads.
    """
    plcs = _source_setting(data_cfg, "plcs")
    if plcs is None:
        raise TwinIDSError(
            f"plc={plc}, but data '{data_cfg.name}' names no PLCs (data.plcs); name the channels with controlled=[...]"
        )
    if plc not in plcs:
        raise TwinIDSError(f"plc={plc} is not a PLC of data '{data_cfg.name}'; its PLCs: {', '.join(plcs)}")
    channels = tuple(str(name) for name in plcs[plc] if name in features)
    if not channels:
        raise TwinIDSError(f"none of the channels {plc} reports ({', '.join(plcs[plc])}) is one the detector reads")
    return channels


def _source_setting(data_cfg: Any, key: str) -> Any:
    """`data.<key>`, a description of the data's source that training never reads (the config hash leaves it out).

    A run trained before the key existed takes its dataset's shipped value: it describes the source, not anything
    the run learned.
    """
    from twinids.config import compose, group_options

    if key in data_cfg:
        return data_cfg[key]
    if str(data_cfg.name) in group_options("data"):
        return compose([f"data={data_cfg.name}"]).data[key]
    return None


def followed(rows: np.ndarray, threat: Threat) -> np.ndarray:
    """The rewritten rows with the link's derived columns recomputed; refuses a link that changed anything else."""
    if threat.link is None:
        return rows
    recomputed = threat.link.recompute(rows)
    others = np.setdiff1d(np.arange(rows.shape[1]), threat.derived)
    if not np.array_equal(recomputed[:, others], rows[:, others]):
        raise TwinIDSError("recomputing the twin's columns changed other channels (a bug)")
    return recomputed


def _test(cfg: Any, data: Any, checkpoint: Path, card: Any, scratch: Path) -> tuple[Any, Any]:
    """The checkpoint's test report on `data` (nothing logged), and the loaded detector."""
    import pytorch_lightning as pl

    from twinids.training.detector import JobContext, make_detector
    from twinids.training.job import quiet_libraries

    quiet_libraries()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    detector = make_detector(cfg, data, training=False)
    detector.load(checkpoint)
    return detector.test(data, JobContext(UnloggedRun(), card, scratch)), detector  # type: ignore[arg-type]


def check_within_threat(before: np.ndarray, after: np.ndarray, threat: Threat) -> np.ndarray:
    """Which entries the attack changed; refuses an attack that changed anything the threat forbids.

    Raises:
        TwinIDSError: for a changed entry outside the attacked rows and controlled channels, a value outside a
            channel's range, a discrete channel off its levels, or a non-finite value (a bug of the method).
    """
    changed = before != after
    allowed = threat.editable(*before.shape)
    if (changed & ~allowed).any():
        raise TwinIDSError("the attack changed readings outside the attacked rows and controlled channels (a bug)")
    written = after[np.ix_(threat.rows, threat.controlled)]
    lower, upper = threat.bounds()
    if not np.isfinite(written).all() or (written < lower - 1e-6).any() or (written > upper + 1e-6).any():
        raise TwinIDSError("the attack wrote readings outside their channels' observed ranges (a bug)")
    for column, channel in enumerate(threat.controlled):
        levels = threat.levels.get(int(channel))
        if levels is not None and not np.isin(written[:, column], levels).all():
            raise TwinIDSError("the attack wrote a discrete channel off its observed values (a bug)")
    return changed


def attacked_recall(confusion: np.ndarray) -> float:
    """The share of attack windows that alarm (predicted as any attack class): what concealment lowers."""
    attack = confusion[1:]
    total = attack.sum()
    return float(attack[:, 1:].sum() / total) if total else float("nan")
