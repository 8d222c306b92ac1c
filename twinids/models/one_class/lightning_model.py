"""One-class detectors as LightningModules: a net learns normal windows, and its deviations become alarms.

Training never reads a label: each batch's targets are replaced by its own windows (what a net that predicts
or reconstructs them is compared with), and the loss is computed per window, as DP-SGD needs. At the end of
every validation epoch a `ScoreCalibration` is fitted on this epoch's normal validation windows (labels only
pick them out): the scorer's normal statistics, then the alarm threshold of the causally smoothed scores for
a target false-alarm rate. The calibration is part of the module's state dict (`get_extra_state`), so each
checkpoint carries the one fitted for its own weights and `eval` restores it from the file; test labels are
only ever compared with the alarms.

Their per-window losses live in `loss.py`.

- `PredictionModule`: the net predicts its window's last k steps (k = the output's length in time: a
  forecaster's horizon, an autoencoder's whole window); deviations are readings minus predictions, per step
  and feature, scored by `twinids.scoring.ResidualScorer` (z-scores or Mahalanobis).
- `ErrorTermModule`: the net returns per-window error terms beside its output (the hybrid's reconstruction
  error of its LSTM states); the score is one term relative to its mean on normal windows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from twinids.errors import TwinIDSError
from twinids.models.detector_module import DetectorModule
from twinids.models.one_class.loss import ErrorTermLoss, PredictionLoss, error_terms, prediction_residuals
from twinids.scoring.calibration import (
    ErrorRatioScorer,
    ScoreCalibration,
    calibration_from_settings,
    residual_calibration,
)


class OneClassModule(DetectorModule):
    """Trains a net on normal windows without labels and turns its deviations into scores and alarms.

    Args:
        net: the pure net.
        optimizer: a partial taking the trainable parameters.
        class_names: must be ["normal", <attack>]: a one-class detector tells attack from normal only.
        attack_names: attack types, normal first, for recall per attack type.
        train_class_counts: training windows per class; any attack window is refused.
        calibration: how deviations become scores and alarms (fitted at every validation epoch end).
        frozen: parts of the net (submodule names) that the loss does not train, kept out of the optimiser.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        attack_names: list[str] | tuple[str, ...],
        train_class_counts: list[int] | None,
        calibration: ScoreCalibration,
        frozen: Sequence[str] = (),
    ) -> None:
        super().__init__(net, optimizer, class_names, attack_names)
        _check_protocol(self.class_names, train_class_counts)
        for part in frozen:
            try:
                self.net.get_submodule(part).requires_grad_(False)
            except AttributeError:
                parts = ", ".join(name for name, _ in self.net.named_children())
                raise TwinIDSError(f"model.module.frozen names '{part}', which the net lacks; parts: {parts}") from None
        self.calibration = calibration
        self._kept: dict[str, list[tuple[np.ndarray, ...]]] = {"val": [], "test": []}

    # -- what a one-class detector defines ---------------------------------------------------------------
    criterion: nn.Module  # `per_window(output, windows)` -> (batch,), and `forward` reducing as `reduction` says

    def deviations(self, output: Any, windows: torch.Tensor) -> torch.Tensor:
        """What the scorer reads per window: residuals (batch, steps, features) or errors (batch,)."""
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------------------
    @property
    def loss(self) -> nn.Module:
        """The per-window loss `loss(output, windows)`: it compares the net's output with the windows, never labels."""
        return self.criterion

    def loss_terms(self, output: Any, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch mean of the per-window loss (`targets` are the windows themselves)."""
        return {"total": self.criterion.per_window(output, targets).mean()}

    def window_losses(self, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each window's loss against itself (labels play no part, as in training)."""
        return self.criterion.per_window(self.net(windows), windows)

    def alarm_score(self, windows: torch.Tensor) -> torch.Tensor:
        """The fitted scorer's score of each window's deviations (before smoothing), differentiable."""
        return self.calibration.scorer.torch_score(self.deviations(self.net(windows), windows))

    def alarm_rule(self) -> tuple[int, float]:
        """The fitted calibration's smoothing span and threshold."""
        if not self.calibration.fitted:
            raise TwinIDSError("no fitted threshold: attack a one-class checkpoint saved after validation")
        return self.calibration.smooth, float(self.calibration.threshold)

    def window_scores(self, windows: torch.Tensor) -> tuple[np.ndarray, None]:
        """The fitted scorer's score of each window (numpy, as its test scores a split); no class of its own."""
        with torch.no_grad():
            deviations = self.deviations(self.net(windows), windows).cpu().numpy()
        return self.calibration.scorer.score(deviations), None

    def window_decision(self) -> tuple[int, float | None]:
        """The fitted calibration's smoothing span and threshold."""
        return self.alarm_rule()

    def export_outputs(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fitted scorer's score of each window in torch (float64), net and scorer in one traceable function."""
        self.alarm_rule()  # refuses a module with no fitted scorer
        return {"score": self.alarm_score(windows)}

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> Any:
        windows = batch[0]
        # Labels never reach training: the target of a one-class net is its own window.
        return super().training_step((windows, windows, *batch[2:]), batch_idx)

    def on_validation_epoch_start(self) -> None:
        self._kept["val"] = []

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        windows, targets = batch[0], batch[1]
        output = self.net(windows)
        normal = targets == 0
        if normal.any():  # the loss on normal windows: model selection without attack labels can monitor it
            per_window = self.criterion.per_window(output, windows)[normal]
            self.log("val/loss", per_window.mean(), on_epoch=True, batch_size=int(normal.sum()))
        self._keep("val", output, batch)

    def on_validation_epoch_end(self) -> None:
        if not self._kept["val"]:
            return
        deviations, targets, attacks, groups = self._gathered("val")
        scores = self.calibration.fit(deviations, targets == 0, groups)
        values = self._metrics(self.val_metrics, scores, targets, attacks, groups)
        self.val_metrics.reset()
        if "val/f1_macro" in values:
            self.log("val/f1_macro", values.pop("val/f1_macro"), prog_bar=True)
        self.log_dict(values)

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._kept["test"] = []

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._keep("test", self.net(batch[0]), batch)

    def on_test_epoch_end(self) -> None:
        if not self.calibration.fitted:
            raise TwinIDSError(
                "this one-class detector has no fitted scorer and threshold (they are fitted at the end of each "
                "validation epoch and saved in its checkpoints): test a checkpoint written after validation"
            )
        deviations, targets, attacks, groups = self._gathered("test")
        scores = self.calibration.scores(deviations, groups)
        self.log_dict(self._metrics(self.test_metrics, scores, targets, attacks, groups))

    def get_extra_state(self) -> dict[str, Any]:
        """The fitted calibration (plain types and tensors), saved in the state dict of every checkpoint."""
        return self.calibration.state_dict() if self.calibration.fitted else {}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the calibration a checkpoint carries (an empty state: none was fitted yet)."""
        if state:
            self.calibration.load_state_dict(state)

    def _keep(self, stage: str, output: Any, batch: tuple[torch.Tensor, ...]) -> None:
        deviations = self.deviations(output, batch[0]).detach().cpu().numpy()
        self._kept[stage].append((deviations, *(part.detach().cpu().numpy() for part in batch[1:4])))

    def _gathered(self, stage: str) -> tuple[np.ndarray, ...]:
        """Deviations, targets, attack types and groups of every window of the stage, in time order."""
        return tuple(np.concatenate(part) for part in zip(*self._kept[stage], strict=True))

    def _metrics(
        self, metrics: Any, scores: np.ndarray, targets: np.ndarray, attacks: np.ndarray, groups: np.ndarray
    ) -> dict[str, torch.Tensor]:
        predicted = self.calibration.alarms(scores).astype(np.int64)
        metrics.update(
            torch.from_numpy(scores), torch.from_numpy(predicted), *(torch.from_numpy(a) for a in (targets, attacks)),
            None, torch.from_numpy(groups),
        )  # fmt: skip
        return metrics.compute()


class PredictionModule(OneClassModule):
    """One-class detector from a net predicting its windows: forecaster (last steps) or autoencoder (all steps).

    Args (besides OneClassModule's):
        scorer: `kind` (zscore | mahalanobis), `smooth` (windows averaged causally), `last_steps` (score only the
            residuals of the window's last n steps; null: every predicted step).
        threshold: `target_fpr`, the share of normal validation windows allowed to alarm.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        scorer: Mapping[str, Any],
        threshold: Mapping[str, Any],
        attack_names: list[str] | tuple[str, ...] = (),
        train_class_counts: list[int] | None = None,
        frozen: Sequence[str] = (),
    ) -> None:
        calibration, last_steps = residual_calibration(scorer, threshold, "model.module")
        super().__init__(net, optimizer, class_names, attack_names, train_class_counts, calibration, frozen)
        self.last_steps = last_steps
        self.criterion = PredictionLoss()

    def deviations(self, output: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Residuals of the predicted steps (the last `last_steps` of them when set), (batch, steps, features)."""
        residuals = prediction_residuals(output, windows)
        return residuals if self.last_steps is None else residuals[:, -self.last_steps :]


class ResidualsAndReadingsModule(PredictionModule):
    """A `PredictionModule` whose scorer reads each predicted step's readings beside its residuals.

    A defence against concealment: an attacker who rewrites some channels so that they agree with the twin's
    prediction (small residuals) must also keep them consistent with the channels it does not control, because
    the Mahalanobis scorer (`scorer.kind=mahalanobis`) fits the joint normal distribution of residuals and readings.
    The net must predict every feature of the window (forecaster, autoencoder).
    """

    def deviations(self, output: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Residuals and readings of the scored steps, side by side: (batch, steps, 2 x features)."""
        residuals = super().deviations(output, windows)
        if residuals.shape[-1] != windows.shape[-1]:
            raise TwinIDSError(
                f"{type(self).__name__} needs a net predicting every feature ({windows.shape[-1]}); this one predicts "
                f"{residuals.shape[-1]}"
            )
        return torch.cat([residuals, windows[:, -residuals.shape[1] :, :]], dim=-1)


class ErrorTermModule(OneClassModule):
    """One-class detector from a net's own per-window error term, e.g. the hybrid's reconstruction error.

    The loss is the weighted sum of the terms (no classification term: there are no labels); the score is
    `score_term` divided by its mean on normal validation windows.

    Args (besides OneClassModule's):
        loss_weights: weight of each error term in the loss.
        score_term: the term that scores windows.
        scorer: `smooth` (windows averaged causally).
        threshold: `target_fpr`.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: list[str],
        loss_weights: Mapping[str, float],
        score_term: str,
        scorer: Mapping[str, Any],
        threshold: Mapping[str, Any],
        attack_names: list[str] | tuple[str, ...] = (),
        train_class_counts: list[int] | None = None,
        frozen: Sequence[str] = (),
    ) -> None:
        if score_term not in loss_weights:
            raise TwinIDSError(
                f"model.module.score_term '{score_term}' is not a loss term; terms: {', '.join(loss_weights)}"
            )
        calibration = calibration_from_settings(ErrorRatioScorer(), dict(scorer), threshold, "model.module")
        super().__init__(net, optimizer, class_names, attack_names, train_class_counts, calibration, frozen)
        self.score_term = score_term
        self.criterion = ErrorTermLoss(loss_weights)

    def loss_terms(self, output: Any, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of each error term and of their weighted total."""
        return {name: values.mean() for name, values in self.criterion.terms(output).items()}

    def deviations(self, output: Any, windows: torch.Tensor) -> torch.Tensor:
        """The scoring term of each window, (batch,)."""
        return error_terms(output)[self.score_term]


def _check_protocol(class_names: list[str], train_class_counts: list[int] | None) -> None:
    """Refuse settings under which a one-class detector would not learn normal behaviour from normal data."""
    if len(class_names) != 2:
        raise TwinIDSError("a one-class detector tells attack from normal only: use data.classes=binary")
    attack_windows = int(sum((train_class_counts or [])[1:]))
    if attack_windows:
        raise TwinIDSError(
            f"the training windows hold {attack_windows} attack windows, but a one-class detector learns normal "
            "behaviour only: set data.train_on=normal"
        )
