"""`audit_membership(run_id)`: membership inference against a tracked training run, results added to that run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError, require_integer

ATTACKS = ("loss_threshold",)


@dataclass(frozen=True)
class AuditSettings:
    """What `configs/audit.yaml` (with the command's overrides) asks for."""

    attack: str
    windows_per_side: int
    non_member_splits: tuple[str, ...]
    seed: int

    @classmethod
    def from_config(cls, cfg: Any) -> AuditSettings:
        """Read and check the composed audit config; one error line naming the key for anything wrong."""
        if cfg.attack not in ATTACKS:
            raise TwinIDSError(f"attack must be one of {list(ATTACKS)}; got {cfg.attack!r}")
        require_integer(cfg.windows_per_side, "windows_per_side", 2)
        require_integer(cfg.seed, "seed", 0)
        splits = cfg.non_member_splits
        if isinstance(splits, str) or not splits or not all(isinstance(s, str) for s in splits):
            raise TwinIDSError(f"non_member_splits must be a non-empty list of split names; got {splits!r}")
        return cls(str(cfg.attack), int(cfg.windows_per_side), tuple(splits), int(cfg.seed))

    def params(self) -> dict[str, str]:
        """The settings as `audit.*` params of the audited run."""
        return {
            "audit.attack": self.attack,
            "audit.windows_per_side": str(self.windows_per_side),
            "audit.non_member_splits": ",".join(self.non_member_splits),
            "audit.seed": str(self.seed),
        }


@dataclass(frozen=True)
class AuditResult:
    """The attack's figures and how many windows each side held."""

    metrics: dict[str, float]
    members: int
    non_members: int


def audit_membership(run_id: str, overrides: Sequence[str] = (), tracking_uri: str | None = None) -> AuditResult:
    """Attack the detector a training run logged with membership inference, and add the figures to that run.

    The model and its data are rebuilt from the config stored in the checkpoint; members are its training
    windows and non-members held-out windows (see `twinids.adversary.membership`). The run's status is left
    as it was: nothing is written unless the attack completes.
    """
    from omegaconf import OmegaConf

    from twinids.adversary.membership import MEMBER_SPLIT, attack_metrics, membership_sample
    from twinids.config import compose
    from twinids.data.registry import build_windows
    from twinids.tracking.queries import add_to_finished_run, download_checkpoint
    from twinids.tracking.run import temporary_directory
    from twinids.training.checkpoint_io import read_card
    from twinids.training.detector import make_detector, require_auditable
    from twinids.training.evaluate import check_compatible
    from twinids.training.job import quiet_libraries, quiet_tracking

    quiet_tracking()
    settings = AuditSettings.from_config(compose(list(overrides), config_name="audit"))
    with temporary_directory() as scratch:
        checkpoint = download_checkpoint(run_id, Path(scratch), tracking_uri)
        card = read_card(checkpoint)
        cfg = OmegaConf.create(card.config)
        data = build_windows(cfg.data)  # every split: members are training windows
        check_compatible(card.feature_names, card.class_names, data.feature_names, data.class_names)
        sample = membership_sample(
            data, settings.non_member_splits, settings.windows_per_side, np.random.default_rng(settings.seed)
        )

        import pytorch_lightning as pl  # slow: only once the run, its data and the sample are known to fit

        quiet_libraries()
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        detector = make_detector(cfg, data, training=False)
        detector.load(checkpoint)
        target = require_auditable(detector, str(cfg.model.name))
        member_losses = target.window_losses(data, MEMBER_SPLIT, sample.members)
        held_out_losses = np.concatenate([target.window_losses(data, s, i) for s, i in sample.non_members.items()])
    # loss_threshold: the lower the loss, the likelier a member
    metrics = attack_metrics(-member_losses, -held_out_losses)
    members, non_members = sample.sizes
    params = {**settings.params(), "audit.members": str(members), "audit.non_members": str(non_members)}
    add_to_finished_run(run_id, metrics, params, tracking_uri)
    return AuditResult(metrics, members, non_members)
