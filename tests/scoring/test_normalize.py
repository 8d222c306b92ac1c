"""The residual scorer gives one score per window, fitted on normal residuals only; smoothing is causal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from twinids.errors import TwinIDSError
from twinids.scoring import ResidualScorer, smooth


def test_zscore_is_the_mean_squared_z_over_features():
    # feature means (1, 2), population stds (1, 2); residual (3, 2) -> z = (2, 0) -> mean z^2 = 2
    scorer = ResidualScorer("zscore").fit(np.array([[0.0, 0.0], [2.0, 4.0]]))
    np.testing.assert_allclose(scorer.score(np.array([[3.0, 2.0]])), [2.0])


def test_zscore_pools_each_features_statistics_over_steps_and_averages_over_steps():
    normal = np.array([[[-1.0], [1.0]], [[1.0], [-1.0]]])  # (windows, steps, features): mean 0, std 1
    scorer = ResidualScorer("zscore").fit(normal)
    np.testing.assert_allclose(scorer.score(np.array([[[2.0], [0.0]]])), [2.0])


def test_zscore_of_the_fitted_normal_residuals_averages_one():
    normal = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4, 3))
    scorer = ResidualScorer("zscore").fit(normal)
    assert scorer.score(normal).mean() == pytest.approx(1.0)


def test_mahalanobis_is_the_ledoit_wolf_squared_distance_per_dimension():
    rng = np.random.default_rng(1)
    normal, residuals = rng.normal(size=(30, 2, 3)), rng.normal(size=(5, 2, 3))
    reference = LedoitWolf().fit(normal.reshape(30, 6)).mahalanobis(residuals.reshape(5, 6)) / 6
    np.testing.assert_allclose(ResidualScorer("mahalanobis").fit(normal).score(residuals), reference)


def test_mahalanobis_is_invertible_with_fewer_windows_than_dimensions():
    normal = np.random.default_rng(2).normal(size=(4, 5, 3))  # 4 windows, 15 dimensions
    scores = ResidualScorer("mahalanobis").fit(normal).score(normal)
    assert np.isfinite(scores).all()


def test_mahalanobis_flags_a_residual_breaking_the_normal_correlation_that_zscore_finds_ordinary():
    rng = np.random.default_rng(3)
    shared = rng.normal(size=500)
    normal = np.stack([shared, shared + 0.05 * rng.normal(size=500)], axis=1)  # two sensors that move together
    broken = np.array([[1.0, -1.0]])
    assert ResidualScorer("zscore").fit(normal).score(broken)[0] < 2.0
    assert ResidualScorer("mahalanobis").fit(normal).score(broken)[0] > 20.0


def test_a_deviation_on_a_feature_that_never_varied_scores_high_not_nan():
    scorer = ResidualScorer("zscore").fit(np.array([[0.0, 1.0], [0.0, -1.0]]))
    scores = scorer.score(np.array([[0.0, 0.0], [0.5, 0.0]]))
    assert scores[0] == 0.0
    assert np.isfinite(scores[1]) and scores[1] > 1e10


def test_torch_residuals_score_like_numpy_residuals():
    normal = np.random.default_rng(4).normal(size=(10, 2, 3))
    scorer = ResidualScorer("zscore").fit(torch.tensor(normal, requires_grad=True))
    np.testing.assert_allclose(scorer.score(torch.tensor(normal)), scorer.score(normal))


def test_two_dimensional_residuals_are_one_step_per_window():
    normal = np.random.default_rng(5).normal(size=(10, 3))
    scorer = ResidualScorer("mahalanobis").fit(normal)
    assert scorer.shape == (1, 3)
    np.testing.assert_allclose(scorer.score(normal), scorer.score(normal[:, None, :]))


@pytest.mark.parametrize("kind", ["zscore", "mahalanobis"])
def test_an_empty_batch_scores_to_an_empty_array(kind):
    scorer = ResidualScorer(kind).fit(np.random.default_rng(6).normal(size=(10, 2, 3)))
    assert scorer.score(np.zeros((0, 2, 3))).shape == (0,)


@pytest.mark.parametrize("kind", ["zscore", "mahalanobis"])
def test_state_survives_a_weights_only_checkpoint_and_scores_the_same(kind, tmp_path):
    rng = np.random.default_rng(7)
    scorer = ResidualScorer(kind).fit(rng.normal(size=(20, 2, 3)))
    torch.save({"scorer": scorer.state_dict()}, tmp_path / "scorer.pt")
    state = torch.load(tmp_path / "scorer.pt", weights_only=True)["scorer"]
    residuals = rng.normal(size=(6, 2, 3))
    np.testing.assert_array_equal(ResidualScorer.from_state(state).score(residuals), scorer.score(residuals))


@pytest.mark.parametrize("normal", [np.zeros((1, 2, 3)), np.zeros((0, 2, 3))])
def test_fewer_than_two_normal_windows_are_refused(normal):
    with pytest.raises(TwinIDSError, match="at least 2 normal validation windows"):
        ResidualScorer("zscore").fit(normal)


def test_non_finite_normal_residuals_are_refused():
    normal = np.zeros((3, 2))
    normal[1, 0] = np.nan
    with pytest.raises(TwinIDSError, match="NaN or infinite"):
        ResidualScorer("zscore").fit(normal)


def test_an_unknown_kind_is_refused():
    with pytest.raises(TwinIDSError, match="zscore"):
        ResidualScorer("euclid")


def test_scoring_before_fitting_is_refused():
    with pytest.raises(TwinIDSError, match="not fitted"):
        ResidualScorer("zscore").score(np.zeros((2, 3)))


def test_residuals_of_another_shape_than_fitted_are_refused():
    scorer = ResidualScorer("zscore").fit(np.zeros((3, 2, 4)) + np.arange(3)[:, None, None])
    with pytest.raises(TwinIDSError, match=r"\(2, 4\)"):
        scorer.score(np.zeros((3, 1, 4)))


def test_smoothing_is_a_trailing_mean_that_starts_with_fewer_windows():
    np.testing.assert_allclose(smooth([1.0, 2.0, 3.0, 4.0], None, span=2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(smooth([3.0, 6.0, 9.0, 0.0], None, span=3), [3.0, 4.5, 6.0, 5.0])


def test_smoothing_never_mixes_devices_even_when_interleaved():
    np.testing.assert_allclose(smooth([1.0, 10.0, 3.0, 30.0], groups=["a", "b", "a", "b"], span=2), [1, 10, 2, 20])
    np.testing.assert_allclose(smooth([1.0, 3.0, 100.0, 300.0], groups=[0, 0, 1, 1], span=2), [1, 2, 100, 200])


def test_smoothing_is_causal():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    changed = scores.copy()
    changed[3] = 1e6
    np.testing.assert_array_equal(smooth(changed, None, span=3)[:3], smooth(scores, None, span=3)[:3])


def test_a_huge_score_does_not_blur_later_windows_once_out_of_span():
    np.testing.assert_array_equal(smooth([1e300, 1.0, 2.0, 3.0], None, span=2)[2:], [1.5, 2.5])


def test_span_one_leaves_scores_unchanged():
    np.testing.assert_array_equal(smooth([5.0, 1.0, 3.0], groups=[0, 1, 0], span=1), [5.0, 1.0, 3.0])


@pytest.mark.parametrize("span", [0, -2, 1.5, True])
def test_a_span_that_is_not_a_positive_integer_is_refused(span):
    with pytest.raises(TwinIDSError, match=r"scorer\.smooth must be an integer >= 1"):
        smooth([1.0, 2.0], None, span=span)


def test_groups_of_another_length_than_the_scores_are_refused():
    with pytest.raises(TwinIDSError, match="one device per score"):
        smooth([1.0, 2.0, 3.0], groups=[0, 0], span=2)


@pytest.mark.parametrize("kind", ["zscore", "mahalanobis"])
def test_the_torch_score_a_white_box_attacker_descends_is_the_score_the_detector_alarms_on(kind):
    rng = np.random.default_rng(0)
    scorer = ResidualScorer(kind).fit(rng.normal(size=(200, 2, 3)))
    residuals = rng.normal(size=(7, 2, 3)) * 3
    differentiable = torch.tensor(residuals, requires_grad=True)
    scores = scorer.torch_score(differentiable)
    np.testing.assert_allclose(scores.detach().numpy(), scorer.score(residuals), rtol=1e-10)
    scores.sum().backward()
    assert differentiable.grad is not None and differentiable.grad.abs().sum() > 0


def test_differentiable_smoothing_is_the_causal_smoothing_within_each_device():
    from twinids.scoring.normalize import smooth_differentiable

    scores = np.array([1.0, 5.0, 2.0, 8.0, 3.0, 4.0, 9.0])
    groups = np.array([0, 1, 0, 1, 0, 0, 1])
    smoothed = smooth_differentiable(torch.tensor(scores), groups, 3)
    np.testing.assert_allclose(smoothed.numpy(), smooth(scores, groups, 3))
