"""One client's detector: train's LightningModule on the client's own windows, trained a few epochs per round.

The module, its data module and DP-SGD come from `LightningDetector`, so a client trains exactly what `twinids
train` trains; only the loop is cut into rounds. Under privacy=dp the client's Opacus accountant continues across
rounds (its state travels in the node's Flower state), so its ε is that of every step it took.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from twinids.errors import TwinIDSError


class LocalDetector:
    """A client's module and windows; `train_round` and `evaluate` take the global net's weights."""

    def __init__(self, cfg: DictConfig, data: Any = None) -> None:
        """`cfg`: the client's config; `data`: its windows, when already built (default: from `cfg.data`)."""
        from twinids.data.registry import build_windows
        from twinids.training.job import quiet_libraries
        from twinids.training.lightning_detector import LightningDetector

        quiet_libraries()
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # every client starts from one global init
        self.cfg = cfg
        self.data = build_windows(cfg.data) if data is None else data
        detector = LightningDetector(cfg, self.data)
        if not isinstance(detector.module.net, torch.nn.Module):
            raise TwinIDSError(f"model '{cfg.model.name}' has no net to federate")
        self.module = detector.module
        self.datamodule = detector.datamodule
        self.privacy = detector.privacy  # DPSGD under privacy=dp, else None

    @property
    def feature_names(self) -> list[str]:
        return list(self.data.feature_names)

    def weights(self) -> dict[str, torch.Tensor]:
        """The net's parameters and buffers (what the server averages)."""
        return {name: value.detach().clone() for name, value in self.module.net.state_dict().items()}

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        try:
            self.module.net.load_state_dict(weights)
        except RuntimeError as error:
            raise TwinIDSError(
                f"the global model does not fit this client's net: {str(error).splitlines()[0]}"
            ) from None

    def train_round(
        self, weights: dict[str, torch.Tensor], epochs: int, proximal_mu: float, server_round: int
    ) -> dict[str, float]:
        """Train `epochs` epochs from the global weights (FedProx: with a proximal step toward them).

        Shuffling and dropout are seeded by the seed and the round, so a client trains alike whether its process
        lives through the run (simulation) or starts anew for each message (a SuperNode's ClientApp process).
        """
        pl.seed_everything(int(self.cfg.seed) * 1000 + server_round, workers=True, verbose=False)
        self.load(weights)
        callbacks: list[Any] = [ProximalStep(weights, proximal_mu)] if proximal_mu > 0 else []
        # No validation: nothing selects on it (a round's weights are what the server averages).
        trainer = self._trainer(callbacks, max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0)
        windows_before = self.module.windows_trained
        began = time.perf_counter()
        trainer.fit(self.module, datamodule=self.datamodule)
        metrics = {"fit_s": time.perf_counter() - began, "windows": float(self.module.windows_trained - windows_before)}
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            metrics["train_loss"] = float(loss)
        if self.privacy is not None:
            metrics["epsilon"] = self.privacy.epsilon()
            metrics["steps"] = float(self.privacy.steps)
        return metrics

    def evaluate(self, weights: dict[str, torch.Tensor], data: Any = None) -> tuple[dict[str, float], np.ndarray]:
        """Test-split metrics of the global weights on this client's windows (or on `data`'s), and their confusion
        matrix."""
        from twinids.data.datamodule import WindowDataModule

        self.load(weights)
        datamodule = self.datamodule
        if data is not None:
            datamodule = WindowDataModule(data, self.cfg.data.batch_size, self.cfg.data.eval_batch_size, 0)
        results = self._trainer([]).test(self.module, datamodule=datamodule, verbose=False)
        return {k: float(v) for k, v in results[0].items()}, self.module.test_metrics.confusion().numpy()

    def _trainer(self, callbacks: list[Any], **changes: Any) -> Any:
        """The run's Lightning trainer, quiet and keeping nothing: no logger, checkpoints, progress bar or summary."""
        from twinids.config import build

        return build(
            self.cfg.trainer,
            "trainer",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
            **changes,
        )

    def privacy_state(self) -> str | None:
        """The DP-SGD accountant and sampler state as JSON (None without privacy)."""
        if self.privacy is None:
            return None
        state = self.privacy.state_dict()
        if "sampler_rng" in state:
            state["sampler_rng"] = state["sampler_rng"].tolist()
        return json.dumps(state)

    def restore_privacy_state(self, text: str) -> None:
        """Continue the accountant (and Poisson sampler) where this client's last round left it."""
        if self.privacy is None:
            return
        state = json.loads(text)
        state["accountant"]["history"] = [tuple(entry) for entry in state["accountant"]["history"]]
        if "sampler_rng" in state:
            state["sampler_rng"] = torch.tensor(state["sampler_rng"], dtype=torch.uint8)
        self.privacy.load_state_dict(state)


class ProximalStep(pl.Callback):
    """FedProx's proximal term as a step after each optimiser step: w -= lr · mu · (w - w_global).

    This is the gradient step of mu/2·||w - w_global||² taken apart from the data's gradient, so under DP-SGD it
    never passes through per-sample clipping and noise (it reads no data) and changes no privacy accounting.
    """

    def __init__(self, global_weights: dict[str, torch.Tensor], mu: float) -> None:
        self.global_weights = global_weights
        self.mu = mu

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        with torch.no_grad():
            for name, parameter in pl_module.net.named_parameters():
                anchor = self.global_weights.get(name)
                if anchor is not None and parameter.requires_grad:
                    parameter.sub_(lr * self.mu * (parameter - anchor))
