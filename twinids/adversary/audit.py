"""`audit_membership(run_id)`: membership inference against a tracked training run, results added to that run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError, require_integer

ATTACKS = ("loss_threshold", "lira")


@dataclass(frozen=True)
class AuditSettings:
    """What `configs/audit.yaml` (with the command's overrides) asks for."""

    attack: str
    windows_per_side: int
    non_member_splits: tuple[str, ...]
    seed: int
    shadows: int

    @classmethod
    def from_config(cls, cfg: Any) -> AuditSettings:
        """Read and check the composed audit config; one error line naming the key for anything wrong."""
        if cfg.attack not in ATTACKS:
            raise TwinIDSError(f"attack must be one of {list(ATTACKS)}; got {cfg.attack!r}")
        require_integer(cfg.windows_per_side, "windows_per_side", 2)
        require_integer(cfg.seed, "seed", 0)
        require_integer(cfg.shadows, "shadows", 2)
        splits = cfg.non_member_splits
        if isinstance(splits, str) or not splits or not all(isinstance(s, str) for s in splits):
            raise TwinIDSError(f"non_member_splits must be a non-empty list of split names; got {splits!r}")
        return cls(str(cfg.attack), int(cfg.windows_per_side), tuple(splits), int(cfg.seed), int(cfg.shadows))

    def params(self) -> dict[str, str]:
        """The settings as `audit.<attack>.*` params of the audited run (each attack its own, so that one run
        holds the figures of both: MLflow params never change)."""
        params = {
            "windows_per_side": str(self.windows_per_side),
            "non_member_splits": ",".join(self.non_member_splits),
            "seed": str(self.seed),
        }
        if self.attack == "lira":
            params["shadows"] = str(self.shadows)
        return {f"audit.{self.attack}.{key}": value for key, value in params.items()}


def read_audit_settings(overrides: Sequence[str]) -> AuditSettings:
    """configs/audit.yaml with the command's overrides, checked."""
    from twinids.config import compose

    return AuditSettings.from_config(compose(list(overrides), config_name="audit"))


@dataclass(frozen=True)
class AuditResult:
    """The attack's figures and how many windows each side held."""

    metrics: dict[str, float]
    members: int
    non_members: int


def audit_membership(
    run_id: str,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    shadow_runs: Sequence[str] = (),
) -> AuditResult:
    """Attack the detector a training run logged with membership inference, and add the figures to that run.

    The model and its data are rebuilt from the config stored in the checkpoint; members are its training
    windows and non-members held-out windows (see `twinids.adversary.membership`). `attack=lira` also reads
    `shadow_runs`, shadow models trained on random halves of the training split (`twinids.launch.shadows`
    trains them). The run's status is left as it was: nothing is written unless the attack completes.
    """
    from omegaconf import OmegaConf

    from twinids.adversary.membership import MEMBER_SPLIT, attack_metrics, membership_sample
    from twinids.data.registry import build_windows
    from twinids.tracking.queries import add_to_finished_run
    from twinids.tracking.run import temporary_directory
    from twinids.training.evaluate import check_compatible
    from twinids.training.job import quiet_tracking

    quiet_tracking()
    settings = read_audit_settings(overrides)
    if settings.attack == "lira" and len(shadow_runs) != settings.shadows:
        raise TwinIDSError(
            f"attack=lira reads {settings.shadows} shadow models and got {len(shadow_runs)}; run it with "
            "`twinids audit RUN_ID attack=lira`, which trains them"
        )
    with temporary_directory() as scratch:
        checkpoint, card = _checkpoint_and_card(run_id, Path(scratch) / "target", tracking_uri)
        cfg = OmegaConf.create(card.config)
        data = build_windows(cfg.data)  # every split: members are training windows
        check_compatible(card.feature_names, card.class_names, data.feature_names, data.class_names)
        sample = membership_sample(
            data, settings.non_member_splits, settings.windows_per_side, np.random.default_rng(settings.seed)
        )
        candidates = [(MEMBER_SPLIT, sample.members), *sample.non_members.items()]
        is_member = np.concatenate([np.full(len(ids), split == MEMBER_SPLIT) for split, ids in candidates])
        losses = _losses(cfg, data, checkpoint, candidates)
        if settings.attack == "loss_threshold":
            scores, scored = -losses, np.ones(len(losses), dtype=bool)  # the lower the loss, the likelier a member
        else:
            scores, scored = _lira(cfg, data, losses, candidates, shadow_runs, Path(scratch), tracking_uri)
    figures = attack_metrics(scores[scored & is_member], scores[scored & ~is_member])
    metrics = {f"audit/{settings.attack}/{name}": value for name, value in figures.items()}
    members, non_members = int((scored & is_member).sum()), int((scored & ~is_member).sum())
    sizes = {f"audit.{settings.attack}.members": str(members), f"audit.{settings.attack}.non_members": str(non_members)}
    params = {**settings.params(), **sizes}
    add_to_finished_run(run_id, metrics, params, tracking_uri)
    return AuditResult(metrics, members, non_members)


def _checkpoint_and_card(run_id: str, folder: Path, tracking_uri: str | None) -> tuple[Path, Any]:
    from twinids.tracking.queries import download_checkpoint
    from twinids.training.checkpoint_io import read_card

    folder.mkdir(parents=True)
    checkpoint = download_checkpoint(run_id, folder, tracking_uri)
    return checkpoint, read_card(checkpoint)


def _losses(cfg: Any, data: Any, checkpoint: Path, candidates: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """The training loss of the detector in `checkpoint` (trained as `cfg` says) on every candidate window."""
    import pytorch_lightning as pl  # slow: only once the run, its data and the sample are known to fit

    from twinids.training.detector import make_detector, require_auditable
    from twinids.training.job import quiet_libraries

    quiet_libraries()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    detector = make_detector(cfg, data, training=False)
    detector.load(checkpoint)
    target = require_auditable(detector, str(cfg.model.name))
    return np.concatenate([target.window_losses(data, split, ids) for split, ids in candidates])


def _lira(
    cfg: Any,
    data: Any,
    target_losses: np.ndarray,
    candidates: list[tuple[str, np.ndarray]],
    shadow_runs: Sequence[str],
    scratch: Path,
    tracking_uri: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Offline LiRA scores of the candidates from shadow models trained on halves of the training split."""
    from omegaconf import OmegaConf

    from twinids.adversary.membership import lira_offline_scores, logit_confidence
    from twinids.data.halves import readings_read, training_half, training_half_block, windows_touching

    def data_but_the_half(data_cfg: Any) -> dict:
        settings = OmegaConf.to_container(data_cfg, resolve=True)
        return {k: v for k, v in settings.items() if k not in ("train_half", "train_half_block")}  # type: ignore[union-attr]

    shadow_losses, out = [], []
    for number, shadow_run in enumerate(shadow_runs):
        checkpoint, card = _checkpoint_and_card(shadow_run, scratch / f"shadow_{number}", tracking_uri)
        shadow_cfg = OmegaConf.create(card.config)
        half = shadow_cfg.data.get("train_half")
        same_data = data_but_the_half(shadow_cfg.data) == data_but_the_half(cfg.data)
        if half is None or not same_data or shadow_cfg.model.name != cfg.model.name:
            raise TwinIDSError(
                f"run '{shadow_run}' is not a shadow of this detector: a shadow trains the same model on a half "
                "(data.train_half) of the same data"
            )
        shadow_losses.append(_losses(shadow_cfg, data, checkpoint, candidates))
        block = training_half_block(shadow_cfg.data.get("train_half_block"), data.window)
        read = readings_read(training_half(data, int(half), block), "train")
        out.append(np.concatenate([~windows_touching(data, split, ids, read) for split, ids in candidates]))
    return lira_offline_scores(
        logit_confidence(target_losses), logit_confidence(np.stack(shadow_losses)), np.stack(out)
    )
