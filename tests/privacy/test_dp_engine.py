"""make_private: a full DP-SGD step through Opacus runs, epsilon grows, settings that void DP are refused."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
from opacus import GradSampleModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from twinids.errors import TwinIDSError
from twinids.models.lstm import LSTMDetector
from twinids.privacy import PrivateLSTM
from twinids.privacy.engine import make_private, poisson_loader


def _setup(dropout: float = 0.1, **overrides):
    torch.manual_seed(0)
    detector = LSTMDetector(
        n_features=4, n_classes=2, hidden_size=6, num_layers=2, dropout=dropout, bidirectional=False
    )
    optimizer = torch.optim.SGD(detector.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.randn(48, 5, 4), torch.randint(0, 2, (48,))), batch_size=12)
    settings = dict(noise_multiplier=1.0, max_grad_norm=1.0, criterion=nn.CrossEntropyLoss()) | overrides
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return detector, make_private(detector, optimizer, loader, **settings)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("clipping", ["ghost", "per_sample"])
def test_dp_sgd_steps_with_poisson_sampling_report_finite_epsilon_that_grows(clipping, accountant):
    detector, private = _setup(clipping=clipping, accountant=accountant)
    before = [p.detach().clone() for p in detector.parameters()]
    epsilons = []
    for windows, labels in private.data_loader:
        private.optimizer.zero_grad()
        private.criterion(private.module(windows), labels).backward()
        private.optimizer.step()
        epsilons.append(private.engine.get_epsilon(delta=1e-5))
    assert isinstance(detector.lstm, PrivateLSTM)
    assert all(math.isfinite(e) and e > 0 for e in epsilons)
    assert all(later > earlier for earlier, later in itertools.pairwise(epsilons))
    assert any(not torch.equal(a, b) for a, b in zip(before, detector.parameters(), strict=True))


@pytest.mark.parametrize("clipping", ["ghost", "per_sample"])
def test_a_noiseless_step_moves_parameters_by_the_mean_clipped_per_sample_gradient(clipping):
    detector, private = _setup(dropout=0.0, clipping=clipping, max_grad_norm=0.05)
    windows, labels = torch.randn(5, 5, 4), torch.randint(0, 2, (5,))
    criterion = nn.CrossEntropyLoss()
    clipped_sum = [torch.zeros_like(p) for p in detector.parameters()]
    private.module.disable_hooks()  # the micro-batch reference runs as plain autograd
    for b in range(len(windows)):
        grads = torch.autograd.grad(criterion(detector(windows[b : b + 1]), labels[b : b + 1]), detector.parameters())
        norm = torch.sqrt(sum(g.square().sum() for g in grads))
        for total, grad in zip(clipped_sum, grads, strict=True):
            total += (0.05 / (norm + 1e-6)).clamp(max=1.0) * grad
    private.module.enable_hooks()
    before = [p.detach().clone() for p in detector.parameters()]
    private.optimizer.noise_multiplier = 0.0  # test only: make_private itself refuses noiseless DP
    private.optimizer.zero_grad()
    private.criterion(private.module(windows), labels).backward()
    private.optimizer.step()
    expected_batch = 12  # 48 windows, 4 batches: the optimizer averages over the expected batch size
    for old, new, total in zip(before, detector.parameters(), clipped_sum, strict=True):
        torch.testing.assert_close(new, old - 0.1 * total / expected_batch)


class _OutputHead(nn.Module):
    """A detector reading the last output step and the final state, fine with an empty batch."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(10, 2)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        output, (h_n, _) = self.lstm(windows)
        return self.head(output[:, -1]) + h_n[0].sum(dim=1, keepdim=True)


@pytest.mark.parametrize("clipping", ["ghost", "per_sample"])
def test_an_empty_poisson_batch_passes_through_a_dp_step(clipping):
    model = _OutputHead()
    loader = DataLoader(TensorDataset(torch.randn(8, 5, 4), torch.randint(0, 2, (8,))), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            clipping=clipping,
            criterion=nn.CrossEntropyLoss(reduction="sum"),
            loss_reduction="sum",
        )
    for size in (0, 3):
        private.optimizer.zero_grad()
        private.criterion(private.module(torch.randn(size, 5, 4)), torch.randint(0, 2, (size,))).backward()
        private.optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_make_private_swaps_nn_lstm_for_private_lstm_and_keeps_the_optimizer_valid():
    detector, private = _setup(clipping="per_sample")
    assert isinstance(detector.lstm, PrivateLSTM)
    optimizer_params = {id(p) for group in private.optimizer.param_groups for p in group["params"]}
    assert optimizer_params == {id(p) for p in detector.parameters()}


@pytest.mark.parametrize("noise_multiplier", [0.0, -1.0, float("nan"), float("inf"), None])
def test_make_private_refuses_noise_that_voids_dp(noise_multiplier):
    with pytest.raises(TwinIDSError, match="noise_multiplier must be a finite number > 0"):
        _setup(noise_multiplier=noise_multiplier)


@pytest.mark.parametrize("max_grad_norm", [0.0, -0.5, float("inf")])
def test_make_private_refuses_an_unbounded_or_empty_clipping_norm(max_grad_norm):
    with pytest.raises(TwinIDSError, match="max_grad_norm must be a finite number > 0"):
        _setup(max_grad_norm=max_grad_norm)


def test_make_private_refuses_uniform_batches_unless_explicitly_accepted():
    with pytest.raises(TwinIDSError, match="Poisson sampling"):
        _setup(poisson_sampling=False)
    _, private = _setup(poisson_sampling=False, allow_uniform_batches=True)
    assert len(private.data_loader) == 4


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("clipping", "flat", "privacy.clipping must be one of"),
        ("accountant", "gdp", "privacy.accountant must be one of"),
        ("loss_reduction", "none", "loss_reduction must be 'mean' or 'sum'"),
    ],
)
def test_make_private_refuses_unknown_settings_naming_the_choices(setting, value, message):
    with pytest.raises(TwinIDSError, match=message):
        _setup(**{setting: value})


def test_ghost_clipping_refuses_to_run_without_the_loss_module():
    with pytest.raises(TwinIDSError, match="needs the loss module"):
        _setup(clipping="ghost", criterion=None)


def test_ghost_clipping_refuses_a_loss_whose_reduction_differs_from_the_setting():
    with pytest.raises(TwinIDSError, match="must agree"):
        _setup(clipping="ghost", criterion=nn.CrossEntropyLoss(reduction="sum"), loss_reduction="mean")


def test_make_private_refuses_layers_that_mix_samples():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)
    with pytest.raises(TwinIDSError, match="BatchNorm"):
        make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            clipping="per_sample",
        )


def test_an_empty_poisson_draw_collates_to_zero_rows_of_the_batch_structure():
    dataset = TensorDataset(torch.randn(8, 5, 4, dtype=torch.double), torch.randint(0, 2, (8,)))
    loader = poisson_loader(DataLoader(dataset, batch_size=4))
    full, empty = loader.collate_fn([dataset[0], dataset[1]]), loader.collate_fn([])
    assert type(empty) is type(full)
    assert [(t.shape, t.dtype) for t in empty] == [((0, 5, 4), torch.double), ((0,), torch.int64)]
    assert len(loader) == 2  # exactly len(plain loader) steps per epoch


def test_a_seeded_sampler_is_refused_in_secure_mode():
    with pytest.raises(TwinIDSError, match="secure_mode=true draws Poisson samples"):
        _setup(secure_mode=True, sampler_generator=torch.Generator().manual_seed(0))


class _ZeroOutputGradient(nn.Module):
    """Reads the final state, and the output sequence times zero: autograd then hands the LSTM's output an
    all-zero gradient, from which how Opacus scaled it cannot be read."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        output, (h_n, _) = self.lstm(windows)
        return self.head(h_n[-1]) + 0.0 * output[:, -1, :2]


def test_per_sample_gradients_are_right_when_the_output_gradient_is_exactly_zero():
    torch.manual_seed(0)
    model = _ZeroOutputGradient().double()
    windows, labels = torch.randn(4, 6, 4, dtype=torch.double), torch.randint(0, 2, (4,))
    criterion = nn.CrossEntropyLoss()
    expected = [
        torch.stack(grads)
        for grads in zip(
            *(
                torch.autograd.grad(criterion(model(windows[b : b + 1]), labels[b : b + 1]), model.parameters())
                for b in range(4)
            ),
            strict=True,
        )
    ]
    loader = DataLoader(TensorDataset(windows, labels), batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            clipping="per_sample",
            criterion=criterion,
        )
        private.criterion(private.module(windows), labels).backward()
    for (name, parameter), grads in zip(model.named_parameters(), expected, strict=True):
        torch.testing.assert_close(parameter.grad_sample, grads, msg=name)


def test_an_exactly_zero_output_gradient_without_the_loss_reduction_is_an_error_not_a_guess():
    torch.manual_seed(0)
    model = _ZeroOutputGradient()
    model.lstm = PrivateLSTM(4, 5)  # plain Opacus, not make_private: the layer is not told the reduction
    wrapped = GradSampleModule(model)
    loss = nn.CrossEntropyLoss()(wrapped(torch.randn(3, 6, 4)), torch.randint(0, 2, (3,)))
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="output gradient is exactly zero"):
        warnings.simplefilter("ignore")
        loss.backward()
