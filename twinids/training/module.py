"""The LightningModule around a detector nn.Module: loss, optimiser and metrics, nothing model-specific."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from twinids.training.metrics import confusion_matrix, detection_metrics


class DetectorModule(pl.LightningModule):
    """Trains any window classifier with (optionally class-weighted) cross-entropy and logs detection metrics.

    Args:
        net: the pure detector module, windows (batch, time, features) -> logits (batch, classes).
        optimizer: a partial that takes the parameters and returns the optimiser.
        class_names: names of the classes, normal first.
        class_weights: per-class loss weights, or None for plain cross-entropy.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.class_names = list(class_names)
        n_classes = len(self.class_names)
        self.loss = nn.CrossEntropyLoss(weight=class_weights)
        self.val_metrics = detection_metrics(n_classes, "val")
        self.test_metrics = detection_metrics(n_classes, "test")
        self.test_confusion = confusion_matrix(n_classes)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of windows."""
        return self.net(windows)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        windows, targets = batch
        loss = self.loss(self.net(windows), targets)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        windows, targets = batch
        logits = self.net(windows)
        self.log("val/loss", self.loss(logits, targets), on_epoch=True, batch_size=len(targets))
        self.val_metrics.update(logits.softmax(dim=1), targets)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log("val/f1_macro", values.pop("val/f1_macro"), prog_bar=True)
        self.log_dict(values)
        self.val_metrics.reset()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        windows, targets = batch
        probabilities = self.net(windows).softmax(dim=1)
        self.test_metrics.update(probabilities, targets)
        self.test_confusion.update(probabilities.argmax(dim=1), targets)

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())
