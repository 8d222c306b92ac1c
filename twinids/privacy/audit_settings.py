"""The one-run privacy audit's settings (`privacy.audit`, under either privacy option), checked before any run.

Kept apart from the DP-SGD settings so that a non-private run reads them without importing Opacus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twinids.errors import TwinIDSError, require_integer, require_number

CANARY_KINDS = ("white_box", "black_box")
CANARY_SCORES = ("likelihood_ratio", "sum")  # how white-box canaries' per-step residuals add up under DP


@dataclass(frozen=True)
class CanaryAudit:
    """The one-run privacy audit of a training run (`privacy.audit`, Steinke, Nasr, Jagielski 2023): m canaries,
    each in the run with probability ½; `count` 0 means no audit."""

    count: int
    kind: str  # white_box: gradients in the clipped sum before the noise | black_box: windows in the training data
    seed: int
    delta: float  # the lower bound's δ
    score: str | None  # DP white-box canaries: likelihood_ratio | sum (None without noise: the sum is exact)

    @classmethod
    def from_config(cls, privacy_cfg: Any) -> CanaryAudit:
        """Read and check `cfg.privacy.audit`; under privacy=dp its δ must be the run's own."""
        audit = privacy_cfg.audit
        count = require_integer(audit.canaries, "privacy.audit.canaries", 0)
        kind = str(audit.kind)
        if kind not in CANARY_KINDS:
            raise TwinIDSError(f"privacy.audit.kind must be one of {list(CANARY_KINDS)}; got {audit.kind!r}")
        seed = require_integer(audit.seed, "privacy.audit.seed", 0)
        delta = require_number(audit.delta, "privacy.audit.delta", 0, 1, open_low=True, open_high=True)
        if privacy_cfg.name == "dp" and delta != privacy_cfg.delta:
            raise TwinIDSError(
                f"privacy.audit.delta={audit.delta} differs from privacy.delta={privacy_cfg.delta}: the audit's "
                "lower bound is compared with the ε the run claims at its own δ (the default privacy.audit.delta: "
                "${privacy.delta})"
            )
        score = audit.get("score")  # only privacy=dp has noise to weigh, and the key
        if privacy_cfg.name == "dp" and score not in CANARY_SCORES:
            raise TwinIDSError(f"privacy.audit.score must be one of {list(CANARY_SCORES)}; got {score!r}")
        return cls(count, kind, seed, delta, score)
