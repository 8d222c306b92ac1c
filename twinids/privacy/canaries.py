"""White-box gradient canaries for a one-run privacy audit of DP-SGD (Steinke, Nasr, Jagielski 2023).

Each of m canaries is a gradient of norm C (the clipping bound) on one coordinate of the trainable parameters,
the coordinates all different ("Dirac" canaries). Each canary is included in the run with probability ½, and an
included canary joins each noisy step with probability q, exactly as a training window does under Poisson
sampling, so the accountant's ε (with its subsampling amplification) is the claim the audit tests. Its gradient
is added to the clipped sum before the noise; the score of a canary is the sum over steps of the released noisy
sum at its coordinate less the training windows' clipped sum there, in units of C. DP-SGD's guarantee holds
against an attacker who knows every other record, so subtracting what the other windows contributed is within
its threat model, and it leaves exactly what the mechanism must hide: the canary and the noise. An included
canary adds q per step to its score on average, the noise spreads it by σ per step: the audit's power grows
with q·√steps / σ, and with the noise switched off it separates included canaries perfectly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from twinids.errors import TwinIDSError
from twinids.privacy.one_run_bound import audit_guesses

GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # of m: how many "in" guesses are tried (union-bounded)


class WhiteBoxCanaries:
    """m Dirac canaries over `params`, added to a DP optimiser's clipped sum before each noisy step.

    Args:
        params: the trainable parameters the DP optimiser updates (their order fixes the coordinates).
        count: m, the number of canaries (at most the number of coordinates).
        clip: C, the per-window clipping bound (each canary's gradient norm).
        sample_rate: q, each included canary's chance of joining a step.
        seed: picks the coordinates, which canaries are included, and their sampling.
    """

    def __init__(self, params: list[torch.Tensor], count: int, clip: float, sample_rate: float, seed: int) -> None:
        sizes = [p.numel() for p in params]
        if count > sum(sizes):
            raise TwinIDSError(
                f"privacy.audit.canaries={count} exceeds the model's {sum(sizes)} trainable coordinates (one each)"
            )
        self.generator = torch.Generator().manual_seed(seed)
        coordinates = torch.randperm(sum(sizes), generator=self.generator)[:count]
        self.included = torch.rand(count, generator=self.generator) < 0.5
        edges = np.cumsum([0, *sizes])
        owner = np.searchsorted(edges, coordinates.numpy(), side="right") - 1
        self.slots = [
            (int(p), torch.as_tensor(coordinates.numpy()[owner == p] - edges[p]), torch.as_tensor(owner == p))
            for p in np.unique(owner)
        ]
        self.clip, self.sample_rate = float(clip), float(sample_rate)
        self.scores = torch.zeros(count, dtype=torch.float64)
        self.steps = 0

    def attach(self, optimizer: Any) -> None:
        """Wrap the DP optimiser's `add_noise`: canaries into the clipped sum before it, scores read after it."""
        add_noise = optimizer.add_noise

        def add_noise_with_canaries() -> None:
            joined = self.included & (torch.rand(len(self.included), generator=self.generator) < self.sample_rate)
            windows_sum = []
            for index, flat, mine in self.slots:
                summed = optimizer.params[index].summed_grad
                windows_sum.append(summed.reshape(-1)[flat].double().cpu())
                summed.view(-1)[flat] += self.clip * joined[mine].to(summed.dtype)
            add_noise()
            for (index, flat, mine), known in zip(self.slots, windows_sum, strict=True):
                released = optimizer.params[index].grad.detach().reshape(-1)[flat].double().cpu()
                self.scores[mine] += (released - known) / self.clip
            self.steps += 1

        optimizer.add_noise = add_noise_with_canaries

    def audit(self, delta: float, beta: float = 0.05) -> dict[str, float]:
        """The empirical ε lower bound at confidence 1 − β, with the guesses it rests on."""
        epsilon, guesses, right = audit_guesses(
            self.scores.numpy(), self.included.numpy(), delta, GUESS_FRACTIONS, beta
        )
        return {
            "epsilon_lower": epsilon,
            "canaries": float(len(self.included)),
            "canary_guesses": float(guesses),
            "canary_guesses_right": float(right),
            "canary_steps": float(self.steps),
        }
