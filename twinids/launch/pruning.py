"""A Lightning callback that reports a trial's metric to Optuna after each validation and stops a pruned trial.

Written here because `optuna_integration.PyTorchLightningPruningCallback` (optuna-integration 5.0) subclasses
the `lightning` package's Callback, which the `pytorch_lightning` Trainer twinids uses does not accept, and
needs `lightning` installed. A pruned trial stops training at the end of the epoch; its run still tests the
best checkpoint and ends FINISHED (tagged `twinids.pruned=true`), so no work is thrown away.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


class TrialPruning(pl.Callback):
    """Report `monitor` to an Optuna trial after every validation epoch; stop training when it should be pruned."""

    def __init__(self, trial: Any, monitor: str) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.pruned_at_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report this epoch's value; ask Lightning to stop if Optuna's pruner says so."""
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        epoch = int(trainer.current_epoch)
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.pruned_at_epoch = epoch
            trainer.should_stop = True

    @property
    def pruned(self) -> bool:
        """Whether the trial was stopped by the pruner."""
        return self.pruned_at_epoch is not None
