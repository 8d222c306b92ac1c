"""`privacy=dp` inside Lightning: refusals, ε bookkeeping, Poisson batches, per-sample gradients, resume state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.accountants import create_accountant
from torch import nn

from twinids.data.registry import build_windows
from twinids.errors import TwinIDSError
from twinids.training.detector import make_detector
from twinids.training.evaluate import evaluate
from twinids.training.train import train

# The batch is pinned (the LSTM's DP recipe would raise it): these tests count the steps it makes.
DP = ["privacy=dp", "data.batch_size=256", "model.module.net.hidden_size=8", "model.module.net.num_layers=1"]


def dp_detector(smoke_config, tmp_path, *overrides: str):
    cfg = smoke_config(tmp_path, *DP, *overrides)
    return make_detector(cfg, build_windows(cfg.data))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ((), "exactly one of privacy.target_epsilon"),
        (("privacy.target_epsilon=3", "privacy.noise_multiplier=1"), "exactly one of privacy.target_epsilon"),
        (("privacy.noise_multiplier=1", "privacy.delta=0.01"), r"privacy\.delta=0\.01 is not below 1/n"),
        (("privacy.noise_multiplier=1", "trainer.gradient_clip_val=1.0"), r"trainer\.gradient_clip_val"),
        (("privacy.noise_multiplier=1", "trainer.accumulate_grad_batches=2"), r"trainer\.accumulate_grad_batches"),
        (("privacy.noise_multiplier=1", "privacy.accountant=gdp"), r"privacy\.accountant"),
        (("privacy.noise_multiplier=1", "privacy.clipping=flat"), r"privacy\.clipping"),
        (("privacy.noise_multiplier=0",), r"privacy\.noise_multiplier"),
        (("privacy.noise_multiplier=1", "privacy.max_grad_norm=-1"), r"privacy\.max_grad_norm"),
        (("privacy.noise_multiplier=1", "privacy.secure_mode=true"), "torchcsprng"),
        (("privacy.target_epsilon=3", "trainer.max_epochs=-1"), r"trainer\.max_epochs"),
        (("privacy.noise_multiplier=1", "trainer.max_steps=5"), r"trainer\.max_steps"),
        (("privacy.noise_multiplier=1", "privacy.max_physical_batch_size=16"), r"limit_train_batches"),
    ],
)
def test_settings_that_void_dp_are_refused_with_a_line_saying_why(smoke_config, tmp_path, overrides, message):
    with pytest.raises(TwinIDSError, match=message):
        dp_detector(smoke_config, tmp_path, *overrides)


def test_the_default_trainer_clipping_turns_off_under_dp(smoke_config, tmp_path):
    assert smoke_config(tmp_path).trainer.gradient_clip_val == 1.0
    assert smoke_config(tmp_path, "privacy=dp").trainer.gradient_clip_val is None


@pytest.mark.parametrize("model", ["random_forest", "logistic_regression"])
def test_classical_models_refuse_dp(smoke_config, tmp_path, model):
    cfg = smoke_config(tmp_path, f"model={model}", "privacy=dp", "privacy.noise_multiplier=1")
    with pytest.raises(TwinIDSError, match=f"model={model} cannot train with privacy=dp"):
        make_detector(cfg, build_windows(cfg.data))


def test_batchnorm_is_refused_because_it_mixes_windows(smoke_config, tmp_path):
    detector = dp_detector(smoke_config, tmp_path, "privacy.noise_multiplier=1")
    with pytest.raises(TwinIDSError, match="BatchNorm"):
        detector.privacy.check_model(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))


def test_a_second_optimizer_is_refused(smoke_config, tmp_path):
    from twinids.models.classifier import ClassifierModule
    from twinids.training.lightning_detector import _check_single_optimizer

    class TwoOptimizers(ClassifierModule):
        def configure_optimizers(self):
            return [torch.optim.SGD(self.net.parameters(), lr=0.1), torch.optim.SGD(self.net.parameters(), lr=0.2)]

    module = TwoOptimizers(nn.Linear(2, 2), lambda p: torch.optim.SGD(p, lr=0.1), ["normal", "attack"])
    with pytest.raises(TwinIDSError, match="second optimiser"):
        _check_single_optimizer(module)


def test_dp_loader_samples_poisson_batches(smoke_config, tmp_path):
    detector = dp_detector(smoke_config, tmp_path, "privacy.noise_multiplier=1", "data.batch_size=64")
    detector.module.configure_optimizers()
    loader = detector.privacy.training_loader(detector.datamodule.loader("train", 64, shuffle=True))
    n, q = detector.privacy.n_train, detector.privacy.sample_rate
    epochs = 30
    sizes, inclusions = [], np.zeros(n)
    for _ in range(epochs):
        for indices in loader.batch_sampler:
            sizes.append(len(indices))
            np.add.at(inclusions, indices, 1)
    sizes = np.array(sizes)
    assert len(sizes) == epochs * round(1 / q)  # a fixed number of steps, each an independent draw
    assert len(set(sizes.tolist())) > 5  # batch sizes vary: not fixed-size shuffled batches
    assert abs(sizes.mean() - n * q) < 4 * math.sqrt(n * q * (1 - q) / len(sizes))
    assert abs(sizes.var() / (n * q * (1 - q)) - 1) < 0.3  # binomial variance of a sum of Bernoulli(q)
    share = inclusions / len(sizes)  # each window joins each batch with probability q, independently
    assert abs(share.mean() - q) < 0.1 * q and inclusions.max() > 1
    windows, targets, attacks, groups = next(iter(loader))
    assert windows.shape[0] == targets.shape[0] == attacks.shape[0] == groups.shape[0]


def assert_epsilon_is_the_accountants(spent: dict) -> None:
    """The claimed ε is the run's accountant's for (σ, q, steps taken); both accountants' ε are reported too."""
    for mechanism, key in ((spent["accountant"], "epsilon"), ("rdp", "epsilon_rdp"), ("prv", "epsilon_prv")):
        accountant = create_accountant(mechanism)
        accountant.history = [(spent["noise_multiplier"], spent["sample_rate"], spent["steps"])]
        assert spent[key] == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-12), key
    assert spent["epsilon_prv"] < spent["epsilon_rdp"]  # PRV's bound is the tighter one


def test_epsilon_is_logged_each_epoch_and_the_final_value_is_the_accountants_for_the_steps_taken(
    smoke_config, tmp_path, mlflow_client
):
    cfg = smoke_config(tmp_path, *DP, "privacy.target_epsilon=3", "trainer.max_epochs=3")
    result = train(cfg)
    spent = result.privacy
    assert spent["steps"] == spent["planned_steps"] == 30
    assert 2.85 <= spent["epsilon"] <= 3.0
    assert_epsilon_is_the_accountants(spent)
    client = mlflow_client(tmp_path)
    history = [
        m.value for m in sorted(client.get_metric_history(result.run_id, "privacy/epsilon"), key=lambda m: m.step)
    ]
    assert len(history) >= 3 and history == sorted(history) and history[-1] == pytest.approx(spent["epsilon"])
    run = client.get_run(result.run_id)
    assert run.data.tags["twinids.privacy"] == "dp" and run.data.tags["twinids.epsilon"] == "3"
    for key in ("noise_multiplier", "delta", "max_grad_norm", "sample_rate", "steps", "accountant"):
        assert f"privacy.{key}" in run.data.params, key
    assert run.data.params["privacy.accountant"] == "prv"  # the default: Opacus's tightest accountant
    for mechanism in ("rdp", "prv"):
        assert run.data.metrics[f"privacy/epsilon_{mechanism}"] == pytest.approx(spent[f"epsilon_{mechanism}"])
    card = torch.load(result.checkpoint, weights_only=True)["twinids"]
    assert card["privacy"]["epsilon"] == spent["epsilon"]  # the best checkpoint carries the ε of every step
    evaluated = client.get_run(evaluate(result.run_id, tracking_uri=cfg.tracking.uri).run_id)
    assert evaluated.data.metrics["privacy/epsilon"] == pytest.approx(spent["epsilon"])
    assert evaluated.data.metrics["privacy/delta"] == pytest.approx(1e-5)
    assert evaluated.data.tags["twinids.epsilon"] == "3"


def test_dp_runs_every_planned_epoch_and_tests_the_last_so_no_validation_data_chooses(smoke_config, tmp_path):
    cfg = smoke_config(tmp_path, *DP, "privacy.target_epsilon=3", "trainer.max_epochs=3")
    assert (cfg.callbacks.select, cfg.callbacks.early_stopping.patience) == ("last", 3)
    result = train(cfg)
    assert result.checkpoint.name == "last.ckpt"
    assert result.privacy["steps"] == result.privacy["planned_steps"]
    assert result.timings["epochs"] == 3


def test_weight_averaging_under_dp_releases_the_average_at_the_same_epsilon(smoke_config, tmp_path):
    from twinids.training.checkpoint_io import load_torch_checkpoint

    plain = train(smoke_config(tmp_path / "plain", *DP, "privacy.target_epsilon=3"))
    averaged = train(
        smoke_config(tmp_path / "ema", *DP, "privacy.target_epsilon=3", "callbacks.weight_averaging.decay=0.5")
    )
    assert averaged.privacy["epsilon"] == plain.privacy["epsilon"]  # post-processing of the noisy steps: no ε
    checkpoint = load_torch_checkpoint(averaged.checkpoint)
    released, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert released.keys() == current.keys()
    assert any(not torch.equal(released[name], current[name]) for name in released)  # the average is what is kept


def test_early_stopping_brought_back_under_dp_spends_less_than_planned_and_reports_it(smoke_config, tmp_path):
    cfg = smoke_config(
        tmp_path,
        *DP,
        "privacy.target_epsilon=3",
        "trainer.max_epochs=6",
        "callbacks.select=best",
        "callbacks.early_stopping.patience=0",
        "callbacks.early_stopping.min_delta=1.0",
    )
    spent = train(cfg).privacy
    assert spent["steps"] < spent["planned_steps"]
    assert spent["epsilon"] < 2.85
    assert_epsilon_is_the_accountants(spent)


def test_testing_the_last_epoch_while_early_stopping_could_fire_is_refused(smoke_config, tmp_path):
    with pytest.raises(TwinIDSError, match=r"early stopping with patience 2 could end training .* before epoch 6"):
        dp_detector(
            smoke_config,
            tmp_path,
            "privacy.noise_multiplier=1",
            "trainer.max_epochs=6",
            "callbacks.early_stopping.patience=2",
        )
    dp_detector(smoke_config, tmp_path, "privacy.noise_multiplier=1", "callbacks.early_stopping.patience=100")


@pytest.mark.parametrize("clipping", ["per_sample", "ghost"])
def test_per_sample_gradients_on_the_lightning_path_match_a_micro_batch_reference(smoke_config, tmp_path, clipping):
    detector = dp_detector(
        smoke_config,
        tmp_path,
        "privacy.noise_multiplier=1",
        f"privacy.clipping={clipping}",
        "model.module.net.dropout=0",
    )
    module = detector.module
    module.configure_optimizers()
    windows, targets, _, _ = next(iter(detector.datamodule.loader("train", 6, shuffle=False)))
    params = [p for p in module.net.parameters() if p.requires_grad]
    hooks = detector.privacy.private.module
    hooks.disable_hooks()
    reference = []
    for i in range(len(windows)):
        loss = module.loss(module.net(windows[i : i + 1]), targets[i : i + 1])
        reference.append(torch.autograd.grad(loss, params))
    hooks.enable_hooks()
    if clipping == "per_sample":
        module.loss(module.net(windows), targets).backward()
        for index, p in enumerate(params):
            torch.testing.assert_close(p.grad_sample, torch.stack([r[index] for r in reference]), atol=1e-5, rtol=1e-4)
    else:  # ghost clipping computes the per-sample norms only; they must be the reference gradients' norms
        module.net.zero_grad()
        module._criterion(module.net(windows), targets).backward()
        norms = torch.stack([torch.sqrt(sum(g.square().sum() for g in r)) for r in reference])
        coefficients = hooks.get_clipping_coef()
        expected = (detector.privacy.settings.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        torch.testing.assert_close(coefficients, expected, atol=1e-5, rtol=1e-4)


def test_a_noiseless_unclipped_dp_step_equals_the_plain_step(smoke_config, tmp_path):
    detector = dp_detector(
        smoke_config,
        tmp_path,
        "privacy.noise_multiplier=1",
        "privacy.max_grad_norm=1e6",
        "model.module.net.dropout=0",
        "privacy.clipping=per_sample",
    )
    module = detector.module
    plain = {name: p.detach().clone() for name, p in module.net.named_parameters()}
    optimizer = module.configure_optimizers()
    optimizer.noise_multiplier = 0.0  # test only: the settings refuse noiseless DP
    batch = int(optimizer.expected_batch_size)
    windows, targets, _, _ = next(iter(detector.datamodule.loader("train", batch, shuffle=False)))
    reference_net = type(module.net)(windows.shape[2], 2, hidden_size=8, num_layers=1, dropout=0.0, bidirectional=False)
    reference_net.load_state_dict(plain)
    reference_optimizer = module.optimizer_factory(list(reference_net.parameters()))
    reference_optimizer.zero_grad()
    module.loss(reference_net(windows), targets).backward()
    reference_optimizer.step()
    optimizer.zero_grad()
    module.loss(module.net(windows), targets).backward()
    optimizer.step()
    for name, p in module.net.named_parameters():
        torch.testing.assert_close(
            p.detach(), dict(reference_net.named_parameters())[name].detach(), atol=1e-6, rtol=1e-5
        )


def test_privacy_state_round_trips_accountant_history_and_sampler_rng(smoke_config, tmp_path):
    first = dp_detector(smoke_config, tmp_path, "privacy.noise_multiplier=1")
    first.module.configure_optimizers()
    first.privacy.private.engine.accountant.history = [(1.0, first.privacy.sample_rate, 17)]
    first.privacy.sampler_generator.manual_seed(1234)
    torch.rand(3, generator=first.privacy.sampler_generator)
    state = first.privacy.state_dict()
    saved = tmp_path / "state.pt"
    torch.save(state, saved)
    second = dp_detector(smoke_config, tmp_path, "privacy.noise_multiplier=1")
    second.privacy.load_state_dict(torch.load(saved, weights_only=True))  # before configure_optimizers, as on resume
    second.module.configure_optimizers()
    assert second.privacy.steps == 17 and second.privacy.epsilon() == pytest.approx(first.privacy.epsilon())
    assert torch.equal(
        torch.rand(5, generator=first.privacy.sampler_generator),
        torch.rand(5, generator=second.privacy.sampler_generator),
    )


def test_a_logical_batch_split_into_physical_batches_is_one_accounted_step(smoke_config, tmp_path):
    overrides = ("privacy.noise_multiplier=1", "privacy.max_physical_batch_size=32", "trainer.limit_train_batches=1.0")
    detector = dp_detector(smoke_config, tmp_path, *overrides)
    detector.module.configure_optimizers()
    loader = detector.privacy.training_loader(detector.datamodule.loader("train", 256, shuffle=True))
    sizes = [len(batch[0]) for batch in loader]
    assert max(sizes) <= 32 and len(sizes) > len(detector.privacy.private.data_loader)
    assert not hasattr(loader, "__len__")  # Lightning must run each epoch to the loader's end, not to a count

    result = train(smoke_config(tmp_path, *DP, *overrides, "trainer.max_epochs=2"))
    spent = result.privacy
    assert spent["steps"] == spent["planned_steps"] == 2 * round(1 / spent["sample_rate"])
    assert_epsilon_is_the_accountants(spent)
