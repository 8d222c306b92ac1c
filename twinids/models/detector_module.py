"""The LightningModule every neural detector builds on: steps, metrics, optimiser and DP-SGD wiring.

A detector subclass says only what is model-specific: its per-window loss (an `nn.Module` with a
`reduction`, so that Opacus can turn it into the ghost-clipping criterion) and how a net output becomes an
attack score and a predicted class per window. Metrics then come out the same for every detector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from twinids.models.metrics import DetectionMetrics

PRIVACY_STATE_KEY = "twinids_privacy"


class WindowScores(NamedTuple):
    """What a detector says about each window: attack score (higher = more suspicious), class, probabilities."""

    score: torch.Tensor
    predicted: torch.Tensor
    probabilities: torch.Tensor | None = None


class PrivateOptimization(Protocol):
    """What DP-SGD provides to a module (see `twinids.privacy.dp_sgd.DPSGD`)."""

    def make_private(self, net: nn.Module, optimizer: torch.optim.Optimizer, loss: nn.Module) -> tuple[Any, Any]:
        """Make `net`'s training private; returns (DP optimizer, criterion to call in training_step)."""

    def epsilon(self) -> float:
        """ε spent by the steps taken so far."""

    def state_dict(self) -> dict[str, Any]:
        """Accountant history and sampler state, for checkpoints."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class DetectorModule(pl.LightningModule):
    """Trains a pure detector net with its own loss and logs detection metrics from scores and predictions.

    Args:
        net: the pure detector module (windows (batch, time, features) -> output; it may also return a
            dict of auxiliary per-window losses beside the output).
        optimizer: a partial taking the trainable parameters and returning the optimiser.
        class_names: the classes, normal first.
        attack_names: attack types, normal first, for recall per attack type.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        attack_names: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.class_names = list(class_names)
        self.val_metrics = DetectionMetrics(self.class_names, attack_names, "val")
        self.test_metrics = DetectionMetrics(self.class_names, attack_names, "test")
        self.privacy: PrivateOptimization | None = None
        self._criterion: Callable[..., Any] | None = None
        self.windows_trained = 0  # training windows seen, for windows/s (Poisson batches vary in size)

    # -- what a detector defines -------------------------------------------------------------------------
    @property
    def loss(self) -> nn.Module:
        """The per-window loss module: `loss(output, targets)`, reducing as its `reduction` says."""
        raise NotImplementedError

    def loss_terms(self, output: Any, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of every loss term, `total` among them: the mean of `loss` over the batch, which a
        non-private training step optimises directly (so the loss is computed once per step)."""
        raise NotImplementedError

    def scores(self, output: Any) -> WindowScores:
        """Attack score and predicted class per window from a net output."""
        raise NotImplementedError

    def window_losses(self, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each window's training loss `(batch,)`: what a membership-inference attacker thresholds."""
        raise NotImplementedError

    def alarm_score(self, windows: torch.Tensor) -> torch.Tensor:
        """Each window's raw alarm score `(batch,)`, differentiable in the windows (see `alarm_rule`)."""
        raise NotImplementedError

    def alarm_rule(self) -> tuple[int, float]:
        """(smooth, threshold): a window alarms when the causal mean of `alarm_score` over the last `smooth`
        windows of its run is above `threshold`."""
        raise NotImplementedError

    def window_scores(self, windows: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw score (float64) and, for a classifier, predicted class of each window, as its test computes them."""
        with torch.no_grad():
            scores = self.scores(self(windows))
        return scores.score.double().numpy(), scores.predicted.numpy()

    def window_decision(self) -> tuple[int, float | None]:
        """(smooth, threshold) applied to `window_scores`; a classifier's (1, None): its predicted class decides."""
        return 1, None

    def export_outputs(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """`window_scores` as one traceable torch function, for export: `score` (float64), `predicted` and, when
        the detector gives them, `probabilities`; the same arithmetic, so an exported graph scores as `test` does."""
        scores = self.scores(self(windows))
        outputs = {"score": scores.score.double(), "predicted": scores.predicted}
        if scores.probabilities is not None:
            outputs["probabilities"] = scores.probabilities
        return outputs

    # -- shared machinery -------------------------------------------------------------------------------
    def forward(self, windows: torch.Tensor) -> Any:
        """The net's output for a batch of windows."""
        return self.net(windows)

    def enable_privacy(self, privacy: PrivateOptimization) -> None:
        """Train with DP-SGD: `configure_optimizers` will hand the net, optimiser and loss to `privacy`."""
        self.privacy = privacy

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> Any:
        windows, targets = batch[0], batch[1]
        output = self.net(windows)
        if self._criterion is None:  # non-private: the logged total is the loss itself, computed once
            terms = self.loss_terms(output, targets) if len(targets) else {}
            loss = terms["total"] if terms else self.loss(output, targets)
        else:  # DP-SGD's criterion clips per window; the logged terms need no graph
            loss = self._criterion(output, targets)
            with torch.no_grad():
                terms = self.loss_terms(output, targets) if len(targets) else {}
        self.windows_trained += len(targets)
        if terms:  # Poisson sampling may draw an empty batch: nothing to log then
            for name, value in terms.items():
                self.log(
                    f"train/{_loss_name(name)}",
                    value,
                    on_step=name == "total",
                    on_epoch=True,
                    prog_bar=name == "total",
                    batch_size=len(targets),
                )
        # Opacus's ghost-clipping loss is not a Tensor; Lightning accepts it inside a dict.
        return loss if isinstance(loss, torch.Tensor) else {"loss": loss}

    def on_train_epoch_end(self) -> None:
        if self.privacy is not None:  # what the accountant reports for the steps taken so far
            self.log("privacy/epsilon", self.privacy.epsilon())

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        windows, targets = batch[0], batch[1]
        output = self.net(windows)
        self.log("val/loss", self.loss_terms(output, targets)["total"], on_epoch=True, batch_size=len(targets))
        scores = self.scores(output)
        self.val_metrics.update(scores.score, scores.predicted, targets, batch[2], scores.probabilities, batch[3])

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        if "val/f1_macro" in values:
            self.log("val/f1_macro", values.pop("val/f1_macro"), prog_bar=True)
        self.log_dict(values)
        self.val_metrics.reset()

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        scores = self.scores(self.net(batch[0]))
        self.test_metrics.update(scores.score, scores.predicted, batch[1], batch[2], scores.probabilities, batch[3])

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self.optimizer_factory([p for p in self.net.parameters() if p.requires_grad])
        if self.privacy is None:
            return optimizer
        optimizer, self._criterion = self.privacy.make_private(self.net, optimizer, self.loss)
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.privacy is not None:
            checkpoint[PRIVACY_STATE_KEY] = self.privacy.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.privacy is not None and PRIVACY_STATE_KEY in checkpoint:
            self.privacy.load_state_dict(checkpoint[PRIVACY_STATE_KEY])


def _loss_name(term: str) -> str:
    """`total` is logged as `train/loss`, every other term as `train/loss_<term>`."""
    return "loss" if term == "total" else f"loss_{term}"
