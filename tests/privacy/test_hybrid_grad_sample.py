"""Under make_private, the hybrid detector's per-sample gradients (CE + weighted per-window auxiliary terms) are
each window's own gradient, and a DP step clips them window by window, in both clipping modes."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from twinids.models.lstm_sae_mha import LSTMSAEMHADetector
from twinids.privacy import PrivateLSTM
from twinids.privacy.engine import PrivateTraining, make_private

DATASET, BATCH, STEPS, FEATURES, CLASSES = 48, 12, 5, 4, 3
LR = 0.1


class HybridLoss(nn.Module):
    """Per window: cross-entropy + w_rec * reconstruction + w_sp * sparsity, then reduced like a torch loss.

    Opacus's ghost-clipping wrapper sets ``reduction = "none"`` and expects the per-window vector.
    """

    def __init__(self, reduction: str = "mean", reconstruction_weight: float = 0.7, sparsity_weight: float = 0.3):
        super().__init__()
        self.reduction = reduction
        self.reconstruction_weight = reconstruction_weight
        self.sparsity_weight = sparsity_weight

    def forward(self, outputs: tuple[Tensor, dict[str, Tensor]], labels: Tensor) -> Tensor:
        logits, aux = outputs
        per_window = (
            F.cross_entropy(logits, labels, reduction="none")
            + self.reconstruction_weight * aux["reconstruction"]
            + self.sparsity_weight * aux["sparsity"]
        )
        if self.reduction == "none":
            return per_window
        return per_window.mean() if self.reduction == "mean" else per_window.sum()


def _private(
    clipping: str, loss_reduction: str = "mean", max_grad_norm: float = 1.0, **net
) -> tuple[LSTMSAEMHADetector, PrivateTraining, HybridLoss]:
    torch.manual_seed(0)
    settings = dict(
        hidden_size=6, num_layers=1, code_size=8, heads=2, sparsity="kl", sparsity_target=0.05, pooling="mean"
    )
    settings |= dict(dropout=0.0, attention_dropout=0.0) | net
    detector = LSTMSAEMHADetector(FEATURES, CLASSES, **settings).double()
    dataset = TensorDataset(torch.randn(DATASET, STEPS, FEATURES, dtype=torch.double), torch.randint(0, CLASSES, (48,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = make_private(
            detector,
            torch.optim.SGD(detector.parameters(), lr=LR),
            DataLoader(dataset, batch_size=BATCH),
            noise_multiplier=1.0,
            max_grad_norm=max_grad_norm,
            clipping=clipping,
            criterion=HybridLoss(reduction=loss_reduction),
            loss_reduction=loss_reduction,
        )
    return detector, private, HybridLoss(reduction=loss_reduction)


def _windows(batch: int = 5) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    windows = torch.randn(batch, STEPS, FEATURES, dtype=torch.double, generator=generator)
    return windows, torch.randint(0, CLASSES, (batch,), generator=generator)


def _microbatch_gradients(detector: nn.Module, private: PrivateTraining, criterion: nn.Module) -> list[list[Tensor]]:
    """Each window's own loss gradient, one window at a time through plain autograd (Opacus hooks off)."""
    windows, labels = _windows()
    private.module.disable_hooks()
    try:
        return [
            list(torch.autograd.grad(criterion(detector(windows[b : b + 1]), labels[b : b + 1]), detector.parameters()))
            for b in range(len(windows))
        ]
    finally:
        private.module.enable_hooks()


CONFIGS = {
    "kl, mean pooling, 1 layer": dict(sparsity="kl", pooling="mean", num_layers=1),
    "l1, last step, 2 layers": dict(sparsity="l1", pooling="last", num_layers=2),
    "kl, max pooling, 2 layers": dict(sparsity="kl", pooling="max", num_layers=2),
}


@pytest.mark.parametrize("loss_reduction", ["mean", "sum"])
@pytest.mark.parametrize("net", CONFIGS.values(), ids=CONFIGS.keys())
def test_per_sample_gradients_of_every_parameter_match_the_microbatch_reference(net, loss_reduction):
    detector, private, criterion = _private("per_sample", loss_reduction, **net)
    assert isinstance(detector.lstm, PrivateLSTM)
    reference = _microbatch_gradients(detector, private, criterion)
    windows, labels = _windows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private.criterion(private.module(windows), labels).backward()
    for index, (name, parameter) in enumerate(detector.named_parameters()):
        assert parameter.grad_sample is not None, name
        expected = torch.stack([grads[index] for grads in reference])
        torch.testing.assert_close(parameter.grad_sample, expected, msg=name)


@pytest.mark.parametrize("clipping", ["ghost", "per_sample"])
def test_a_noiseless_step_moves_parameters_by_the_mean_clipped_per_sample_gradient(clipping):
    clip = 0.05
    detector, private, criterion = _private(clipping, max_grad_norm=clip, sparsity="kl", pooling="mean")
    clipped_sum = [torch.zeros_like(p) for p in detector.parameters()]
    norms = []
    for grads in _microbatch_gradients(detector, private, criterion):
        norms.append(torch.sqrt(sum(g.square().sum() for g in grads)))
        for total, grad in zip(clipped_sum, grads, strict=True):
            total += (clip / (norms[-1] + 1e-6)).clamp(max=1.0) * grad
    assert min(norms) > clip  # every window is clipped, so the step depends on each window's own norm
    before = [p.detach().clone() for p in detector.parameters()]
    private.optimizer.noise_multiplier = 0.0  # test only: make_private itself refuses noiseless DP
    windows, labels = _windows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private.optimizer.zero_grad()
        private.criterion(private.module(windows), labels).backward()
        private.optimizer.step()
    # The DP optimizer averages over the expected batch size (48 windows, batches of 12), not the 5 drawn.
    for (name, new), old, total in zip(detector.named_parameters(), before, clipped_sum, strict=True):
        torch.testing.assert_close(new, old - LR * total / BATCH, msg=name)


@pytest.mark.parametrize("loss_reduction", ["mean", "sum"])
@pytest.mark.parametrize("clipping", ["ghost", "per_sample"])
def test_an_empty_poisson_batch_passes_through_a_dp_step(clipping, loss_reduction):
    detector, private, _ = _private(clipping, loss_reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for size in (0, 3):
            windows, labels = _windows(size)
            private.optimizer.zero_grad()
            private.criterion(private.module(windows), labels).backward()
            private.optimizer.step()
    assert all(torch.isfinite(p).all() for p in detector.parameters())
