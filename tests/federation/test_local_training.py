"""A client's local training: FedProx's proximal step, and the DP-SGD accountant carried from one fit to the next."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from twinids.federation.local_training import ProximalStep


def test_the_proximal_step_moves_each_weight_toward_the_global_one_by_lr_times_mu():
    net = torch.nn.Linear(3, 2)
    anchor = {name: torch.zeros_like(value) for name, value in net.state_dict().items()}
    before = {name: value.detach().clone() for name, value in net.named_parameters()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    trainer = SimpleNamespace(optimizers=[optimizer])
    ProximalStep(anchor, mu=0.2).on_train_batch_end(trainer, SimpleNamespace(net=net), None, None, 0)
    for name, value in net.named_parameters():
        assert torch.allclose(value, before[name] * (1 - 0.5 * 0.2))  # w - lr·mu·(w - 0)


def test_with_mu_zero_the_proximal_step_leaves_the_weights_alone():
    net = torch.nn.Linear(3, 2)
    anchor = {name: torch.ones_like(value) for name, value in net.state_dict().items()}
    before = [value.detach().clone() for value in net.parameters()]
    trainer = SimpleNamespace(optimizers=[torch.optim.SGD(net.parameters(), lr=1.0)])
    ProximalStep(anchor, mu=0.0).on_train_batch_end(trainer, SimpleNamespace(net=net), None, None, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


@pytest.mark.slow
def test_a_second_round_continues_the_clients_accountant(shipped_config):
    from omegaconf import open_dict

    from twinids.federation.local_training import LocalDetector

    cfg = shipped_config(
        "experiment=smoke", "data.source.n_steps=900", "privacy=dp", "privacy.target_epsilon=3", "trainer.max_epochs=2"
    )
    with open_dict(cfg):
        cfg.trainer.limit_val_batches = 0
    client = LocalDetector(cfg)
    first = client.train_round(client.weights(), 1, 0.0, 1)
    second = client.train_round(client.weights(), 1, 0.0, 2)
    assert second["steps"] == 2 * first["steps"]  # the steps of both rounds, in one accountant
    assert 0 < first["epsilon"] < second["epsilon"] <= 3.0 + 1e-6  # σ was planned for both rounds' epochs
