"""A detector's differentiable alarm score says exactly when it alarms: what a white-box attacker descends."""

from __future__ import annotations

import torch
from torch import nn

from twinids.models.classifier import ClassifierModule
from twinids.models.lstm import LSTMDetector


def test_a_classifiers_alarm_margin_is_positive_exactly_when_it_predicts_an_attack_class():
    torch.manual_seed(0)
    net = LSTMDetector(n_features=4, n_classes=3, hidden_size=8, num_layers=1, dropout=0.0, bidirectional=False)
    module = ClassifierModule(net, lambda p: torch.optim.SGD(p, lr=0.1), ["normal", "dos", "replay"]).eval()
    windows = torch.randn(64, 5, 4) * 3
    margin = module.alarm_score(windows)
    predicted = module.scores(module(windows)).predicted
    smooth, threshold = module.alarm_rule()
    assert smooth == 1
    assert torch.equal(margin > threshold, predicted != 0)
    windows.requires_grad_(True)
    module.alarm_score(windows).sum().backward()
    assert windows.grad.abs().sum() > 0


def test_the_margin_of_a_net_with_auxiliary_losses_reads_its_logits():
    class WithAuxiliary(nn.Module):
        def forward(self, windows):
            logits = torch.stack([windows.sum(dim=(1, 2)), -windows.sum(dim=(1, 2))], dim=1)
            return logits, {"reconstruction": windows.square().mean(dim=(1, 2))}

    module = ClassifierModule(
        WithAuxiliary(), lambda p: torch.optim.SGD(p, lr=0.1), ["normal", "attack"], loss_weights={"reconstruction": 1}
    )
    windows = torch.ones(2, 3, 2)
    windows[1] *= -1
    assert torch.allclose(module.alarm_score(windows), torch.tensor([-12.0, 12.0], dtype=torch.float64))
