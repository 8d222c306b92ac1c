"""Ghost clipping with PrivateLSTM: per-sample gradient norms, and the clipped sum of the second pass."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from opacus.utils.per_sample_gradients_utils import compute_microbatch_grad_sample
from torch import nn

from twinids.models.lstm import LSTMDetector
from twinids.privacy import PrivateLSTM, to_private_lstm


class OutputOnly(nn.Module):
    """The layer's full output sequence as the model output."""

    def __init__(self, lstm: PrivateLSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.lstm(windows)[0]


def _ghost_norms(model: nn.Module, windows: torch.Tensor, loss_reduction: str) -> dict[str, torch.Tensor]:
    wrapped = GradSampleModuleFastGradientClipping(model, loss_reduction=loss_reduction, max_grad_norm=1.0)
    output = wrapped(windows)
    nn.L1Loss(reduction=loss_reduction)(output, torch.zeros_like(output)).backward()
    norms = {name: p._norm_sample for name, p in model.named_parameters()}
    wrapped._close()
    return norms


# Hidden 8, 16 features: windows up to 6 steps take the Gram-matrix route for both weights, 30 steps the
# per-sample-gradient route for both, 8 steps one of each.
@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "window"), [(1, False, 5), (2, True, 8), (3, False, 30), (2, True, 1)]
)
@pytest.mark.parametrize("loss_reduction", ["mean", "sum"])
def test_ghost_norms_equal_norms_of_the_microbatch_per_sample_gradients(
    num_layers, bidirectional, window, loss_reduction
):
    torch.manual_seed(window)
    model = OutputOnly(PrivateLSTM(16, 8, num_layers=num_layers, bidirectional=bidirectional).double())
    windows = torch.randn(4, window, 16, dtype=torch.double)
    reference = compute_microbatch_grad_sample(windows, model, loss_reduction=loss_reduction)
    norms = _ghost_norms(model, windows, loss_reduction)
    for name, grads in reference.items():
        torch.testing.assert_close(norms[f"{name}"], grads.flatten(1).norm(dim=1), msg=name)


@pytest.mark.parametrize("loss_reduction", ["mean", "sum"])
def test_ghost_norms_cover_gradients_that_reach_the_layer_only_through_final_states(loss_reduction):
    torch.manual_seed(0)
    detector = to_private_lstm(
        LSTMDetector(4, 3, hidden_size=5, num_layers=2, dropout=0.0, bidirectional=False)
    ).double()
    windows = torch.randn(5, 6, 4, dtype=torch.double)
    reference = compute_microbatch_grad_sample(windows, detector, loss_reduction=loss_reduction)
    norms = _ghost_norms(detector, windows, loss_reduction)
    for name, grads in reference.items():
        torch.testing.assert_close(norms[name], grads.flatten(1).norm(dim=1), msg=name)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_two_pass_backward_leaves_the_sum_of_clipped_per_sample_gradients(bidirectional):
    torch.manual_seed(0)
    detector = LSTMDetector(4, 3, hidden_size=5, num_layers=2, dropout=0.0, bidirectional=bidirectional)
    detector = to_private_lstm(detector).double()
    windows, labels = torch.randn(6, 7, 4, dtype=torch.double), torch.randint(0, 3, (6,))
    max_grad_norm = 0.05
    criterion = nn.CrossEntropyLoss()
    expected = {name: torch.zeros_like(p) for name, p in detector.named_parameters()}
    for b in range(len(windows)):
        detector.zero_grad()
        criterion(detector(windows[b : b + 1]), labels[b : b + 1]).backward()
        norm = torch.sqrt(sum(p.grad.square().sum() for p in detector.parameters()))
        coefficient = (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        for name, p in detector.named_parameters():
            expected[name] += coefficient * p.grad

    detector.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModuleFastGradientClipping(detector, max_grad_norm=max_grad_norm)
        optimizer = DPOptimizerFastGradientClipping(
            torch.optim.SGD(detector.parameters(), lr=0.1),
            noise_multiplier=0.0,
            max_grad_norm=max_grad_norm,
            expected_batch_size=len(windows),
        )
        loss = DPLossFastGradientClipping(wrapped, optimizer, criterion)(wrapped(windows), labels)
        loss.backward()
    for name, p in detector.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], msg=name)


def test_second_pass_of_ghost_clipping_reuses_the_first_pass_gate_gradients(monkeypatch):
    import twinids.privacy.lstm_recurrence as recurrence

    calls = []
    full_backward = recurrence._backward_through_time
    monkeypatch.setattr(recurrence, "_backward_through_time", lambda *args: calls.append(1) or full_backward(*args))
    torch.manual_seed(0)
    detector = to_private_lstm(LSTMDetector(4, 2, hidden_size=5, num_layers=2, dropout=0.1, bidirectional=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModuleFastGradientClipping(detector, max_grad_norm=0.1)
        optimizer = DPOptimizerFastGradientClipping(
            torch.optim.SGD(detector.parameters(), lr=0.1),
            noise_multiplier=0.0,
            max_grad_norm=0.1,
            expected_batch_size=4,
        )
        criterion = DPLossFastGradientClipping(wrapped, optimizer, nn.CrossEntropyLoss())
        criterion(wrapped(torch.randn(4, 5, 4)), torch.randint(0, 2, (4,))).backward()
    assert len(calls) == 4  # 2 layers x 2 directions, first pass only


def test_a_second_backward_that_is_no_per_sample_multiple_runs_the_recurrence_again():
    torch.manual_seed(0)
    reference = nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    lstm = PrivateLSTM(3, 4, num_layers=2).double()
    lstm.load_state_dict(reference.state_dict())
    windows = torch.randn(3, 6, 3, dtype=torch.double)
    wrapped = GradSampleModuleFastGradientClipping(lstm, max_grad_norm=1.0)
    output = wrapped(windows)[0]
    output.sum().backward(retain_graph=True)
    wrapped.disable_hooks()
    lstm.zero_grad()
    output.square().sum().backward()
    reference(windows)[0].square().sum().backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), lstm.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
