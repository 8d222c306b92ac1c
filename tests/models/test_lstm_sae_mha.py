"""The hybrid detector maps windows to logits plus unweighted per-window reconstruction and sparsity terms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from twinids.errors import TwinIDSError
from twinids.models.lstm_sae_mha import LSTMSAEMHADetector, SparseAutoencoder
from twinids.models.lstm_sae_mha.sparse_autoencoder import kl_sparsity

FEATURES, CLASSES, STEPS = 5, 3, 7


@pytest.fixture
def make_detector(shipped_net):
    """`make_detector(**changes)`: the net configs/model/lstm_sae_mha.yaml builds, seeded, in eval mode."""

    def build(**changes) -> LSTMSAEMHADetector:
        torch.manual_seed(0)
        return shipped_net("lstm_sae_mha", FEATURES, CLASSES, **changes).eval()

    return build


@pytest.mark.parametrize("batch", [4, 1, 0])
@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
def test_forward_gives_logits_per_window_and_exactly_the_two_aux_terms_per_window(pooling, batch, make_detector):
    logits, aux = make_detector(pooling=pooling)(torch.randn(batch, STEPS, FEATURES))
    assert logits.shape == (batch, CLASSES)
    assert set(aux) == {"reconstruction", "sparsity"}
    assert all(term.shape == (batch,) for term in aux.values())


@pytest.mark.parametrize("sparsity", ["kl", "l1"])
@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
def test_changing_one_window_leaves_every_other_windows_outputs_unchanged(pooling, sparsity, make_detector):
    detector = make_detector(pooling=pooling, sparsity=sparsity, num_layers=2)
    windows = torch.randn(4, STEPS, FEATURES)
    changed = windows.clone()
    changed[2] += 3.0
    (logits, aux), (new_logits, new_aux) = detector(windows), detector(changed)
    others = [0, 1, 3]
    torch.testing.assert_close(new_logits[others], logits[others])
    for name in aux:
        torch.testing.assert_close(new_aux[name][others], aux[name][others], msg=name)
        assert new_aux[name][2] != aux[name][2], name


@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
def test_logits_are_the_head_of_the_attended_codes_pooled_over_time_as_named(pooling, make_detector):
    detector = make_detector(pooling=pooling)
    windows = torch.randn(3, STEPS, FEATURES)
    attended = detector.attention(detector.autoencoder(detector.lstm(windows)[0]).codes)
    pooled = {"mean": attended.mean(dim=1), "last": attended[:, -1], "max": attended.max(dim=1).values}[pooling]
    torch.testing.assert_close(detector(windows)[0], detector.head(pooled))


def test_the_prediction_depends_on_earlier_steps_of_the_window(make_detector):
    detector = make_detector(pooling="last")
    windows = torch.randn(1, STEPS, FEATURES)
    changed = windows.clone()
    changed[0, 0] += 5.0
    assert not torch.allclose(detector(windows)[0], detector(changed)[0])


def test_reconstruction_is_the_mean_squared_error_of_decoded_lstm_states_over_time_and_units(make_detector):
    detector = make_detector(hidden_size=6, code_size=4, heads=2)
    windows = torch.randn(3, STEPS, FEATURES)
    states = detector.lstm(windows)[0]
    decoded = detector.autoencoder.decoder(torch.sigmoid(detector.autoencoder.encoder(states)))
    by_hand = torch.stack([((decoded[b] - states[b]) ** 2).sum() / (STEPS * 6) for b in range(3)])
    torch.testing.assert_close(detector(windows)[1]["reconstruction"], by_hand)


def test_reconstruction_is_zero_when_decoder_after_encoder_reproduces_the_states():
    autoencoder = SparseAutoencoder(width=3, code_size=2, sparsity="kl", sparsity_target=0.05)
    state = torch.tensor([0.3, -0.7, 0.1])
    with torch.no_grad():  # codes are constant; the decoder's bias alone maps them back to the state
        autoencoder.encoder.weight.zero_()
        autoencoder.decoder.weight.zero_()
        autoencoder.decoder.bias.copy_(state)
    states = state.expand(2, 4, 3)
    torch.testing.assert_close(autoencoder(states).reconstruction, torch.zeros(2))


def test_reconstruction_error_scores_each_window_without_gradient_as_forward_does(make_detector):
    detector = make_detector()
    windows = torch.randn(4, STEPS, FEATURES)
    scores = detector.reconstruction_error(windows)
    assert scores.shape == (4,)
    assert not scores.requires_grad
    torch.testing.assert_close(scores, detector(windows)[1]["reconstruction"])
    assert detector.reconstruction_error(torch.randn(0, STEPS, FEATURES)).shape == (0,)


def test_kl_sparsity_is_zero_when_each_units_mean_activation_over_the_window_equals_the_target():
    codes = torch.tensor([[[0.02, 0.05], [0.08, 0.05]]])  # unit means over the two steps: 0.05 and 0.05
    torch.testing.assert_close(kl_sparsity(codes, 0.05), torch.zeros(1))


def test_kl_sparsity_is_the_bernoulli_kl_summed_over_units_when_the_rate_is_off_target():
    codes = torch.tensor([[[0.5, 0.05], [0.5, 0.05]], [[0.2, 0.01], [0.4, 0.03]]])
    rho = 0.05

    def kl(rate: float) -> float:
        return rho * math.log(rho / rate) + (1 - rho) * math.log((1 - rho) / (1 - rate))

    expected = torch.tensor([kl(0.5) + 0.0, kl(0.3) + kl(0.02)])
    result = kl_sparsity(codes, rho)
    torch.testing.assert_close(result, expected)
    assert (result > 0).all()


def test_l1_sparsity_is_the_mean_absolute_code_of_each_window():
    torch.manual_seed(0)
    autoencoder = SparseAutoencoder(width=6, code_size=4, sparsity="l1", sparsity_target=0.05)
    states = torch.randn(3, STEPS, 6)
    codes = torch.sigmoid(states @ autoencoder.encoder.weight.T + autoencoder.encoder.bias)
    expected = torch.stack([codes[b].abs().sum() / (STEPS * 4) for b in range(3)])
    torch.testing.assert_close(autoencoder(states).sparsity, expected)


def test_the_kl_penalty_stays_finite_when_the_code_layer_saturates():
    autoencoder = SparseAutoencoder(width=2, code_size=2, sparsity="kl", sparsity_target=0.05)
    with torch.no_grad():
        autoencoder.encoder.weight.fill_(1e4)
    penalty = autoencoder(torch.ones(1, 3, 2)).sparsity
    assert torch.isfinite(penalty).all()


def test_every_layer_with_weights_is_an_lstm_or_a_linear_that_opacus_clips(make_detector):
    detector = make_detector(num_layers=2)
    weighted = {type(m) for m in detector.modules() if any(True for _ in m.parameters(recurse=False))}
    assert weighted == {nn.LSTM, nn.Linear}
    assert detector.lstm.batch_first


BAD_SETTINGS = {
    "heads not dividing code_size": (dict(code_size=16, heads=3), "heads=3 must divide code_size=16"),
    "no heads": (dict(heads=0), "model.module.net.heads must be an integer >= 1; got 0"),
    "unknown sparsity": (dict(sparsity="entropy"), "sparsity must be one of \\['kl', 'l1'\\], got 'entropy'"),
    "target rate of 1": (dict(sparsity_target=1.0), "sparsity_target must be an activation rate strictly between"),
    "unknown pooling": (dict(pooling="attention"), "pooling must be one of \\['mean', 'last', 'max'\\], got"),
    "dropout of 1": (dict(dropout=1.0), "dropout must be in \\[0, 1\\)"),
    "negative attention dropout": (dict(attention_dropout=-0.1), "attention dropout must be in \\[0, 1\\)"),
}


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_configuration_is_refused_naming_the_setting(settings, message, make_detector):
    with pytest.raises(TwinIDSError, match=message):
        make_detector(**settings)
