"""One training step of the hybrid detector (LSTM + sparse autoencoder + attention), plain vs DP-SGD.

The same net, loss (cross-entropy plus weighted reconstruction and sparsity terms, as `model=lstm_sae_mha`
trains it) and fixed batch; DP-SGD through `make_private` with ghost clipping and with materialised
per-sample gradients. Rounds visit the variants in turn; each figure is a median over rounds.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

from twinids.bench.dp_step import _timed
from twinids.models.classifier import ClassifierLoss
from twinids.models.lstm_sae_mha import LSTMSAEMHADetector
from twinids.privacy.engine import make_private

HYBRID_VARIANTS = ("plain", "ghost", "per_sample")


def _step(name: str, windows: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    torch.manual_seed(0)
    model = LSTMSAEMHADetector(
        windows.shape[2],
        2,
        hidden_size=32,
        num_layers=1,
        code_size=16,
        heads=4,
        sparsity="kl",
        sparsity_target=0.05,
        pooling="mean",
        dropout=0.1,
        attention_dropout=0.0,
    )  # the shipped configs/model/lstm_sae_mha.yaml
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    criterion = ClassifierLoss(auxiliary_weights={"reconstruction": 0.1, "sparsity": 0.01})
    if name != "plain":
        loader = DataLoader(TensorDataset(windows, labels), batch_size=len(windows))
        private = make_private(
            model, optimizer, loader, noise_multiplier=1.0, max_grad_norm=1.0, clipping=name, criterion=criterion
        )
        model, optimizer, criterion = private.module, private.optimizer, private.criterion

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(windows), labels).backward()
        optimizer.step()

    return step


def measure_hybrid_step(batch: int = 256, window: int = 10, features: int = 40, repeats: int = 15) -> dict[str, float]:
    """Median ms of a plain, a ghost-clipping DP and a per-sample DP step of the hybrid, and their ratios."""
    torch.manual_seed(0)
    windows, labels = torch.randn(batch, window, features), torch.randint(0, 2, (batch,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        steps = {name: _step(name, windows, labels) for name in HYBRID_VARIANTS}
        for step in steps.values():
            for _ in range(3):
                step()
        times: dict[str, list[float]] = {name: [] for name in HYBRID_VARIANTS}
        for round_index in range(repeats):
            shift = round_index % len(HYBRID_VARIANTS)
            for name in HYBRID_VARIANTS[shift:] + HYBRID_VARIANTS[:shift]:
                times[name].append(_timed(steps[name], torch.device("cpu")))
    result = {f"hybrid_{name}_ms": statistics.median(samples) * 1e3 for name, samples in times.items()}
    result["hybrid_dp_step_vs_plain_ratio"] = (
        min(result["hybrid_ghost_ms"], result["hybrid_per_sample_ms"]) / (result["hybrid_plain_ms"])
    )
    return result
