"""The empirical ε lower bound of a one-run privacy audit (Steinke, Nasr, Jagielski, NeurIPS 2023, Appendix D).

m canaries are each included in training with probability ½; an auditor guesses "in" for the canaries with the
highest scores and "out" for those with the lowest, r guesses in all, and is right v times. Under (ε, δ)-DP,
P[v or more right] ≤ P[Bin(r, e^ε/(1+e^ε)) ≥ v] + 2mδ·α, so every ε that makes the observed v less likely than β
is ruled out: the largest such ε is the lower bound at confidence 1 − β. The same computation as
`jax_privacy.auditing` (which needs jax, so it is not a dependency).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """An upper bound on P[at least v of r guesses right] for an (ε, δ)-DP training run with m canaries."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m; got m={m}, r={r}, v={v}")
    if v == 0:
        return 1.0
    p = special.expit(epsilon)  # e^ε / (1 + e^ε)
    tail = stats.binom.sf(v - 1, r, p)  # P[Bin(r, p) >= v]
    if delta == 0:
        return float(min(tail, 1.0))
    i = np.arange(1, v + 1)
    alpha = np.max(np.cumsum(stats.binom.pmf(v - i, r, p)) / i)  # max_i (P[Bin >= v-i] - P[Bin >= v]) / i
    return float(min(tail + 2.0 * m * delta * alpha, 1.0))


def epsilon_lower(m: int, r: int, v: int, delta: float, beta: float = 0.05) -> float:
    """The largest ε whose (ε, δ)-DP the observed v right guesses of r rule out at level β (0 if none)."""

    def excess(epsilon: float) -> float:
        return p_value(m, r, v, epsilon, delta) - beta

    if excess(0.0) >= 0:
        return 0.0
    high = 1.0
    while excess(high) < 0:
        high *= 2.0
    return float(optimize.brentq(excess, high / 2 if high > 1 else 0.0, high, xtol=1e-9))


def audit_guesses(
    scores: np.ndarray, included: np.ndarray, delta: float, guess_fractions: Sequence[float], beta: float = 0.05
) -> tuple[float, int, int]:
    """ε lower bound from canary scores: for each fraction f in `guess_fractions`, guess "in" for the f·m/2 highest
    scores and "out" for the f·m/2 lowest (abstaining on the rest), each tested at β / (number of f) (a union bound,
    so taking the best f stays valid). Returns (ε, r, v)."""
    m = len(scores)
    ranked = np.asarray(included, dtype=bool)[np.argsort(-np.asarray(scores), kind="stable")]
    level = beta / len(guess_fractions)
    best = (0.0, 0, 0)
    for fraction in guess_fractions:
        k = max(1, round(fraction * m / 2))
        v = int(ranked[:k].sum()) + int((~ranked[m - k :]).sum())
        bound = epsilon_lower(m, 2 * k, v, delta, level)
        if bound > best[0]:
            best = (bound, 2 * k, v)
    return best
