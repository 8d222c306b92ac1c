"""Opacus's per-sample gradients for PrivateLSTM equal the micro-batch reference (each sample's own loss)."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus import GradSampleModule
from opacus.utils.per_sample_gradients_utils import check_per_sample_gradients_are_correct
from torch import nn

from twinids.models.lstm import LSTMDetector
from twinids.privacy import PrivateLSTM, to_private_lstm


class OutputOnly(nn.Module):
    """The layer's full output sequence as the model output (what Opacus's checker compares against zero)."""

    def __init__(self, lstm: PrivateLSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.lstm(windows)[0]


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "window", "batch"),
    [(1, False, 1, 3), (2, True, 7, 4), (3, False, 30, 3), (1, True, 100, 2)],
)
def test_per_sample_gradients_match_microbatch_reference_for_mean_and_sum_losses(
    num_layers, bidirectional, window, batch
):
    torch.manual_seed(window)
    lstm = PrivateLSTM(3, 4, num_layers=num_layers, bidirectional=bidirectional).double()
    windows = torch.randn(batch, window, 3, dtype=torch.double)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The checker compares Opacus against the micro-batch loop for loss_reduction "sum" and "mean".
        assert check_per_sample_gradients_are_correct(windows, OutputOnly(lstm))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_per_sample_gradients_match_when_the_loss_uses_only_the_final_states(bidirectional):
    torch.manual_seed(0)
    detector = LSTMDetector(4, 3, hidden_size=5, num_layers=2, dropout=0.0, bidirectional=bidirectional)
    detector = to_private_lstm(detector).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert check_per_sample_gradients_are_correct(torch.randn(4, 6, 4, dtype=torch.double), detector)


@pytest.mark.parametrize("loss_reduction", ["mean", "sum"])
def test_per_sample_gradients_with_dropout_active_equal_each_samples_loss_gradient(loss_reduction):
    torch.manual_seed(0)
    lstm = PrivateLSTM(3, 4, num_layers=3, dropout=0.5, bidirectional=True).double().train()
    windows = torch.randn(5, 7, 3, dtype=torch.double)

    def loss_per_sample(module: nn.Module) -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout masks in both forward passes
        output, (h_n, _) = module(windows)
        return output.square().sum(dim=(1, 2)) + h_n.sum(dim=(0, 2))

    reference = {name: [] for name, _ in lstm.named_parameters()}
    losses = loss_per_sample(lstm)
    for b in range(len(windows)):
        grads = torch.autograd.grad(losses[b], list(lstm.parameters()), retain_graph=True)
        for (name, _), grad in zip(lstm.named_parameters(), grads, strict=True):
            reference[name].append(grad)

    wrapped = GradSampleModule(lstm, loss_reduction=loss_reduction)
    losses = loss_per_sample(wrapped)
    (losses.mean() if loss_reduction == "mean" else losses.sum()).backward()
    for name, parameter in lstm.named_parameters():
        torch.testing.assert_close(parameter.grad_sample, torch.stack(reference[name]), msg=name)


def test_the_trace_of_a_forward_call_is_freed_with_its_graph():
    lstm = PrivateLSTM(3, 4, num_layers=2)
    wrapped = GradSampleModule(lstm)
    wrapped(torch.randn(2, 5, 3))[0].sum().backward()
    assert len(lstm._traces) == 0
    output = wrapped(torch.randn(2, 5, 3))[0]
    assert len(lstm._traces) == 1
    del output
    assert len(lstm._traces) == 0
