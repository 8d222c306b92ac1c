"""PrivateLSTM is a drop-in for nn.LSTM(batch_first=True): same parameters, same outputs, same gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from twinids.errors import TwinIDSError
from twinids.models.lstm import LSTMDetector
from twinids.privacy import PrivateLSTM, to_private_lstm

SHAPES = [
    dict(num_layers=1, bidirectional=False, dropout=0.0),
    dict(num_layers=2, bidirectional=True, dropout=0.0),
    dict(num_layers=3, bidirectional=False, dropout=0.4),
    dict(num_layers=3, bidirectional=True, dropout=0.4),
]


def _pair(**config) -> tuple[nn.LSTM, PrivateLSTM]:
    torch.manual_seed(0)
    reference = nn.LSTM(5, 6, batch_first=True, **config).double()
    private = PrivateLSTM(5, 6, **config).double()
    private.load_state_dict(reference.state_dict())
    return reference, private


def test_parameter_names_and_shapes_are_those_of_nn_lstm():
    for config in SHAPES:
        reference, private = _pair(**config)
        assert [(n, p.shape) for n, p in private.named_parameters()] == [
            (n, p.shape) for n, p in reference.named_parameters()
        ]


def test_state_dict_loads_both_ways_between_nn_lstm_and_private_lstm():
    reference, private = _pair(num_layers=2, bidirectional=True)
    with torch.no_grad():
        for p in private.parameters():
            p.add_(1.0)
    reference.load_state_dict(private.state_dict())
    for (_, a), (_, b) in zip(reference.named_parameters(), private.named_parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("config", SHAPES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_forward_matches_nn_lstm_with_copied_weights_in_eval_mode(config):
    reference, private = _pair(**config)
    reference.eval()
    private.eval()
    windows = torch.randn(4, 9, 5, dtype=torch.double)
    expected, (h_expected, c_expected) = reference(windows)
    output, (h_n, c_n) = private(windows)
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(h_n, h_expected)
    torch.testing.assert_close(c_n, c_expected)


def test_forward_matches_nn_lstm_with_initial_states_and_for_one_unbatched_window():
    reference, private = _pair(num_layers=2, bidirectional=True)
    windows = torch.randn(3, 7, 5, dtype=torch.double)
    h0, c0 = torch.randn(2, 4, 3, 6, dtype=torch.double)
    expected = reference(windows, (h0, c0))
    torch.testing.assert_close(private(windows, (h0, c0)), expected)
    torch.testing.assert_close(private(windows[0], (h0[:, 0], c0[:, 0])), reference(windows[0], (h0[:, 0], c0[:, 0])))


def test_parameter_gradients_match_nn_lstm_when_loss_uses_output_and_final_states():
    reference, private = _pair(num_layers=2, bidirectional=True)
    windows = torch.randn(4, 8, 5, dtype=torch.double)
    for module in (reference, private):
        output, (h_n, c_n) = module(windows)
        (output.square().sum() + h_n.sin().sum() + c_n.sum()).backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), private.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


def test_to_private_lstm_replaces_nested_lstm_and_shares_its_parameters():
    detector = LSTMDetector(n_features=5, n_classes=2, hidden_size=6, num_layers=2, dropout=0.1, bidirectional=False)
    before = dict(detector.named_parameters())
    optimizer = torch.optim.SGD(detector.parameters(), lr=0.1)
    assert to_private_lstm(detector) is detector
    assert isinstance(detector.lstm, PrivateLSTM)
    after = dict(detector.named_parameters())
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before)
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in detector.parameters()}


def test_to_private_lstm_of_an_lstm_returns_a_private_lstm():
    assert isinstance(to_private_lstm(nn.LSTM(3, 4, batch_first=True)), PrivateLSTM)


def test_to_private_lstm_refuses_a_time_major_lstm_with_a_teaching_message():
    with pytest.raises(TwinIDSError, match="batch_first=True"):
        to_private_lstm(nn.LSTM(3, 4))
