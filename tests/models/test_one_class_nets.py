"""The one-class nets (LSTM forecaster, LSTM autoencoder) map windows to residuals and per-window losses."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus.utils.per_sample_gradients_utils import check_per_sample_gradients_are_correct
from opacus.validators import ModuleValidator

from twinids.errors import TwinIDSError
from twinids.models.lstm_autoencoder import LSTMAutoencoder
from twinids.models.lstm_forecaster import LSTMForecaster
from twinids.privacy import to_private_lstm

SMALL_NETS = {
    "forecaster": lambda: LSTMForecaster(n_features=3, hidden_size=5, num_layers=2, horizon=2, dropout=0.0),
    "autoencoder": lambda: LSTMAutoencoder(n_features=3, hidden_size=5, num_layers=2, latent_size=4, dropout=0.0),
}


@pytest.mark.parametrize(("num_layers", "horizon"), [(1, 1), (2, 3)])
def test_forecaster_predicts_horizon_steps_of_every_feature(num_layers, horizon):
    net = LSTMForecaster(n_features=4, hidden_size=6, num_layers=num_layers, horizon=horizon, dropout=0.0)
    assert net(torch.randn(5, 8, 4)).shape == (5, horizon, 4)


def test_forecast_ignores_the_steps_it_predicts():
    torch.manual_seed(0)
    net = LSTMForecaster(n_features=3, hidden_size=5, num_layers=1, horizon=2, dropout=0.0).eval()
    windows = torch.randn(2, 6, 3)
    changed = windows.clone()
    changed[:, -2:] += 10.0
    torch.testing.assert_close(net(changed), net(windows))
    changed[:, -3] += 10.0
    assert not torch.allclose(net(changed), net(windows))


def test_forecaster_residuals_are_last_steps_minus_forecast():
    torch.manual_seed(0)
    net = LSTMForecaster(n_features=3, hidden_size=5, num_layers=1, horizon=2, dropout=0.0).eval()
    windows = torch.randn(4, 6, 3)
    torch.testing.assert_close(net.residuals(windows), windows[:, -2:] - net(windows))


def test_autoencoder_reconstructs_every_step_of_the_window():
    net = LSTMAutoencoder(n_features=4, hidden_size=6, num_layers=1, latent_size=3, dropout=0.0)
    assert net(torch.randn(5, 7, 4)).shape == (5, 7, 4)


def test_autoencoder_residuals_are_windows_minus_reconstruction():
    torch.manual_seed(0)
    net = LSTMAutoencoder(n_features=3, hidden_size=5, num_layers=1, latent_size=2, dropout=0.0).eval()
    windows = torch.randn(4, 6, 3)
    torch.testing.assert_close(net.residuals(windows), windows - net(windows))


def test_autoencoder_reconstructs_early_steps_from_the_whole_window():
    torch.manual_seed(0)
    net = LSTMAutoencoder(n_features=3, hidden_size=5, num_layers=1, latent_size=2, dropout=0.0).eval()
    windows = torch.randn(1, 6, 3)
    changed = windows.clone()
    changed[0, -1] += 5.0
    assert not torch.allclose(net(changed)[0, 0], net(windows)[0, 0])


@pytest.mark.parametrize("kind", SMALL_NETS)
def test_loss_per_window_is_each_windows_mean_squared_residual(kind):
    torch.manual_seed(0)
    net = SMALL_NETS[kind]().eval()
    windows = torch.randn(4, 6, 3)
    losses = net.loss_per_window(windows)
    assert losses.shape == (4,)
    torch.testing.assert_close(losses, net.residuals(windows).square().mean(dim=(1, 2)))
    torch.testing.assert_close(losses[2:3], net.loss_per_window(windows[2:3]))


@pytest.mark.parametrize("kind", SMALL_NETS)
def test_an_empty_batch_gives_empty_outputs_and_losses(kind):
    net = SMALL_NETS[kind]()
    empty = torch.zeros(0, 6, 3)
    assert net(empty).shape[0] == 0
    assert net.residuals(empty).shape[0] == 0
    assert net.loss_per_window(empty).shape == (0,)


@pytest.mark.parametrize("kind", SMALL_NETS)
def test_per_sample_gradients_under_opacus_match_the_microbatch_reference(kind):
    torch.manual_seed(0)
    private = to_private_lstm(SMALL_NETS[kind]()).double()
    assert ModuleValidator.validate(private, strict=False) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert check_per_sample_gradients_are_correct(torch.randn(4, 6, 3, dtype=torch.double), private)


@pytest.mark.parametrize("window", [1, 2])
def test_forecaster_refuses_windows_not_longer_than_the_horizon(window, shipped_net):
    net = shipped_net("lstm_forecaster", n_features=3, horizon=2)
    with pytest.raises(TwinIDSError, match=r"data\.window .* model\.module\.net\.horizon"):
        net(torch.randn(2, window, 3))


@pytest.mark.parametrize("horizon", [0, -1, 1.5, True])
def test_forecaster_refuses_a_horizon_that_is_not_a_positive_integer(horizon, shipped_net):
    with pytest.raises(TwinIDSError, match=r"model\.module\.net\.horizon must be an integer >= 1"):
        shipped_net("lstm_forecaster", n_features=3, horizon=horizon)


@pytest.mark.parametrize("kind", SMALL_NETS)
def test_windows_with_another_feature_count_are_refused(kind):
    with pytest.raises(TwinIDSError, match="n_features"):
        SMALL_NETS[kind]()(torch.randn(2, 6, 4))
