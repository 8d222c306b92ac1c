"""A non-private training step optimises the very loss the module defines, computed once (the logged total)."""

from __future__ import annotations

import pytest

from twinids.data.registry import build_windows
from twinids.training.detector import make_detector

ONE_CLASS = ["task=score", "data.train_on=normal"]


@pytest.mark.parametrize(
    "overrides",
    [["model=lstm"], ["model=lstm_sae_mha"], ["model=lstm_forecaster", *ONE_CLASS],
     ["model=lstm_autoencoder", *ONE_CLASS], ["model=lstm_sae_mha_score", *ONE_CLASS]],
    ids=lambda o: o[0],
)  # fmt: skip
def test_the_training_step_returns_the_modules_loss_of_the_batch(tmp_path, smoke_config, overrides):
    cfg = smoke_config(tmp_path, *overrides)
    detector = make_detector(cfg, build_windows(cfg.data))
    module = detector.module.eval()  # eval: no dropout between the two calls
    windows, targets, attacks, groups = next(iter(detector.datamodule.loader("train", 64, shuffle=False)))
    step_loss = module.training_step((windows, targets, attacks, groups), 0)
    wanted = windows if cfg.task == "score" else targets  # a one-class net's target is its own window
    assert step_loss.item() == pytest.approx(module.loss(module.net(windows), wanted).item(), rel=1e-6)
    assert step_loss.requires_grad
