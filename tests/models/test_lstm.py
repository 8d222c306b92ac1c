"""The LSTM detector is a pure nn.Module mapping windows to class logits."""

from __future__ import annotations

import pytest
import torch

from twinids.models.lstm import LSTMDetector


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("num_layers", "n_classes"), [(1, 2), (3, 5)])
def test_logits_have_one_row_per_window_and_one_column_per_class(bidirectional, num_layers, n_classes):
    net = LSTMDetector(
        n_features=7,
        n_classes=n_classes,
        hidden_size=8,
        num_layers=num_layers,
        dropout=0.1,
        bidirectional=bidirectional,
    )
    assert net(torch.randn(4, 12, 7)).shape == (4, n_classes)


def test_prediction_depends_on_earlier_steps_of_the_window():
    torch.manual_seed(0)
    net = LSTMDetector(n_features=3, n_classes=2, hidden_size=8, num_layers=1, dropout=0.0, bidirectional=False).eval()
    windows = torch.randn(1, 6, 3)
    changed = windows.clone()
    changed[0, 0] += 5.0
    assert not torch.allclose(net(windows), net(changed))


def test_the_shipped_net_is_the_configured_width_and_depth(shipped_net):
    net = shipped_net("lstm", n_features=3, n_classes=2)
    assert (net.lstm.hidden_size, net.lstm.num_layers, net.lstm.bidirectional) == (32, 2, False)
    assert net.head.in_features == 32


def test_bidirectional_summary_uses_both_directions_final_states():
    torch.manual_seed(0)
    net = LSTMDetector(n_features=3, n_classes=2, hidden_size=4, num_layers=2, dropout=0.1, bidirectional=True).eval()
    assert net.head.in_features == 8
    windows = torch.randn(2, 5, 3)
    _, (h_n, _) = net.lstm(windows)
    expected = net.head(torch.cat([h_n[-2], h_n[-1]], dim=1))
    torch.testing.assert_close(net(windows), expected)
