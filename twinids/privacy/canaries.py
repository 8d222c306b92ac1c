"""Canaries for a one-run privacy audit of a training run (Steinke, Nasr, Jagielski, NeurIPS 2023).

m canaries are each included in the run with probability ½; after training each gets a score, and guessing "in"
for the highest scores gives an ε lower bound (`twinids.privacy.one_run_bound`). Two kinds:

- White-box (`WhiteBoxCanaries`): each canary is a gradient of norm C (the clipping bound) on one coordinate of the
  trainable parameters, the coordinates all different ("Dirac" canaries). An included canary joins each step with
  probability q, exactly as a training window does under Poisson sampling, so the accountant's ε (with its
  subsampling amplification) is the claim the audit tests. Under DP-SGD its gradient is added to the clipped sum
  before the noise; its score is the sum over steps of the released noisy sum at its coordinate less the training
  windows' clipped sum there, in units of C. DP-SGD's guarantee holds against an attacker who knows every other
  record, so subtracting what the other windows contributed is within its threat model, and it leaves exactly what
  the mechanism must hide: the canary and the noise. Each step's residual y is then 1 (joined) or 0 plus N(0, σ²),
  and a canary's score adds up the steps' log-likelihood ratios of "included" (joins with probability q) against
  "excluded", log(1 − q + q·exp((y − ½)/σ²)), the most powerful test of that pair (Neyman–Pearson), or plainly the
  residuals (`score: sum`). In a non-private run nothing hides a canary: the summed residual counts its joins
  exactly, and the bound is the most m canaries can show.
- Black-box (`InputCanaries`): each canary is a window of random readings with a random label, added to the
  training data; its score is minus the trained model's loss on it. This measures what the released model gives
  away (the attacker sees only the model), so its bounds are far looser than white-box ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from twinids.errors import TwinIDSError
from twinids.privacy.audit_settings import CANARY_SCORES
from twinids.privacy.one_run_bound import audit_guesses

GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # of m: how many guesses are tried (union-bounded)


def canary_audit(scores: np.ndarray, included: np.ndarray, delta: float) -> dict[str, float]:
    """The empirical ε lower bound (95% confidence) from the canaries' scores, with the guesses it rests on."""
    epsilon, guesses, right = audit_guesses(scores, included, delta, GUESS_FRACTIONS)
    return {
        "epsilon_lower": epsilon,
        "canaries": float(len(included)),
        "canary_guesses": float(guesses),
        "canary_guesses_right": float(right),
    }


class WhiteBoxCanaries:
    """m Dirac canaries over `params`, added to each step's gradient before it is released.

    Args:
        params: the trainable parameters the optimiser updates (their order fixes the coordinates).
        count: m, the number of canaries (at most the number of coordinates).
        clip: C, each canary's gradient norm (the per-window clipping bound under DP-SGD).
        sample_rate: q, each included canary's chance of joining a step.
        seed: picks the coordinates, which canaries are included, and their sampling.
        noise: σ, the noise std in units of C (0: no noise, as in a non-private run).
        score: "likelihood_ratio" (needs σ > 0) or "sum" of the per-step residuals.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        count: int,
        clip: float,
        sample_rate: float,
        seed: int,
        *,
        noise: float,
        score: str,
    ) -> None:
        sizes = [p.numel() for p in params]
        if count > sum(sizes):
            raise TwinIDSError(
                f"privacy.audit.canaries={count} exceeds the model's {sum(sizes)} trainable coordinates (one each)"
            )
        self.params = params
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
        if score not in CANARY_SCORES or (score == "likelihood_ratio" and noise <= 0):
            raise ValueError(f"score must be one of {CANARY_SCORES} (likelihood_ratio with noise > 0); got {score!r}")
        self.score, self.noise = score, float(noise)
        self.scores = torch.zeros(count, dtype=torch.float64)
        self.steps = 0

    def step(
        self, gradients: Sequence[torch.Tensor], scale: float, release: Callable[[], Sequence[torch.Tensor]]
    ) -> None:
        """Add this step's canaries (C·`scale` each) to `gradients` (one per param, changed in place), call
        `release`, and score each canary by what the released gradients hold at its coordinate beyond the rest."""
        joined = self.included & (torch.rand(len(self.included), generator=self.generator) < self.sample_rate)
        known = []
        for index, flat, mine in self.slots:
            gradient = gradients[index]
            known.append(gradient.reshape(-1)[flat].double().cpu())
            gradient.view(-1)[flat] += self.clip * scale * joined[mine].to(gradient.dtype)
        released = release()
        for (index, flat, mine), before in zip(self.slots, known, strict=True):
            after = released[index].detach().reshape(-1)[flat].double().cpu()
            self.scores[mine] += self._step_score((after - before) / (self.clip * scale))
        self.steps += 1

    def _step_score(self, residual: torch.Tensor) -> torch.Tensor:
        """One step's evidence that each canary is in, from its residual (1 if it joined, else 0, plus noise)."""
        if self.score == "sum":
            return residual
        q = self.sample_rate
        return torch.logaddexp(
            torch.full_like(residual, math.log1p(-q)), math.log(q) + (residual - 0.5) / self.noise**2
        )

    def attach(self, optimizer: Any) -> None:
        """Wrap an Opacus DP optimiser's `add_noise`: canaries into the clipped sum before it, scores after it."""
        add_noise = optimizer.add_noise
        params = optimizer.params

        def add_noise_with_canaries() -> None:
            def release() -> list[torch.Tensor]:
                add_noise()
                return [p.grad for p in params]

            self.step([p.summed_grad for p in params], 1.0, release)

        optimizer.add_noise = add_noise_with_canaries

    def callback(self) -> pl.Callback:
        """A Lightning callback for a non-private run: each step's mean gradient (a window counts 1/batch in it)
        gains the canaries before the optimiser reads it."""
        return _PlainStepCanaries(self)

    def audit(self, delta: float) -> dict[str, float]:
        """The empirical ε lower bound at 95% confidence, with the guesses it rests on."""
        return {**canary_audit(self.scores.numpy(), self.included.numpy(), delta), "canary_steps": float(self.steps)}


class _PlainStepCanaries(pl.Callback):
    def __init__(self, canaries: WhiteBoxCanaries) -> None:
        self.canaries = canaries
        self.batch_size = 1

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        self.batch_size = max(1, len(batch[1]))

    def on_before_optimizer_step(self, trainer: Any, module: Any, optimizer: Any) -> None:
        params = self.canaries.params
        missing = [p for p in params if p.grad is None]
        for p in missing:
            p.grad = torch.zeros_like(p)
        self.canaries.step([p.grad for p in params], 1.0 / self.batch_size, lambda: [p.grad for p in params])


class InputCanaries:
    """m black-box canaries: windows of independent standard-normal readings (the scale of standardised
    features), each with a label drawn from `labels`; each is in the training data with probability ½.

    Args:
        count: m.
        window: readings per window.
        features: features per reading.
        labels: the class indices a canary's label is drawn from (those the training data holds).
        seed: draws the windows, their labels and which canaries are included.
    """

    def __init__(self, count: int, window: int, features: int, labels: Sequence[int], seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.windows = torch.randn(count, window, features, generator=generator)
        choices = torch.as_tensor(list(labels), dtype=torch.long)
        self.targets = choices[torch.randint(len(choices), (count,), generator=generator)]
        self.included = torch.rand(count, generator=generator) < 0.5

    def training_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The included canaries' windows and labels, to add to the training data."""
        return self.windows[self.included], self.targets[self.included]

    def audit(
        self, window_losses: Callable[[torch.Tensor, torch.Tensor], np.ndarray], delta: float
    ) -> dict[str, float]:
        """Score every canary by minus the trained model's loss on it; the ε lower bound at 95% confidence."""
        losses = np.asarray(window_losses(self.windows, self.targets), dtype=np.float64)
        labels = self.targets.numpy()
        for label in np.unique(labels):  # a label's own loss level says nothing of membership: compare within it
            losses[labels == label] -= np.median(losses[labels == label])
        return canary_audit(-losses, self.included.numpy(), delta)
