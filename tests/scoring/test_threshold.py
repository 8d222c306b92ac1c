"""The alarm threshold comes from normal validation scores only and keeps their false-alarm rate within target."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinids.errors import TwinIDSError
from twinids.scoring import alarms, threshold_for_fpr


def test_one_percent_of_one_to_hundred_leaves_only_the_top_score_alarming():
    scores = np.arange(1.0, 101.0)
    threshold = threshold_for_fpr(scores, target_fpr=0.01)
    assert threshold == 99.0
    np.testing.assert_array_equal(np.flatnonzero(alarms(scores, threshold)), [99])


def test_the_allowed_alarm_count_rounds_down():
    # 10 scores at 25 %: at most floor(2.5) = 2 alarms, so the threshold is the 8th smallest score
    assert threshold_for_fpr(np.arange(1.0, 11.0), target_fpr=0.25) == 8.0


def test_a_rate_whole_in_decimal_is_not_rounded_down_by_float_error():
    # 0.29 * 100 is 28.999999999999996 in floats; 29 alarms are allowed, so the threshold is 71
    assert threshold_for_fpr(np.arange(1.0, 101.0), target_fpr=0.29) == 71.0


def test_the_order_of_the_scores_does_not_matter():
    scores = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    assert threshold_for_fpr(scores, target_fpr=0.2) == threshold_for_fpr(np.sort(scores), target_fpr=0.2) == 4.0


def test_scores_tied_with_the_threshold_do_not_alarm():
    scores = np.array([1.0] * 4 + [5.0] * 6)
    threshold = threshold_for_fpr(scores, target_fpr=0.5)
    assert threshold == 5.0
    assert not alarms(scores, threshold).any()


def test_with_fewer_scores_than_one_over_the_rate_the_threshold_is_the_largest_score():
    assert threshold_for_fpr([0.3, 0.9, 0.1], target_fpr=0.01) == 0.9


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(1e-4, 0.9999),
)
def test_the_false_alarm_rate_on_the_fitting_scores_never_exceeds_the_target(scores, target_fpr):
    threshold = threshold_for_fpr(scores, target_fpr=target_fpr)
    assert threshold in scores
    assert alarms(scores, threshold).mean() <= target_fpr


def test_the_signature_takes_scores_and_a_keyword_only_rate_and_nothing_else():
    parameters = inspect.signature(threshold_for_fpr).parameters
    assert list(parameters) == ["normal_scores", "target_fpr"]
    assert parameters["target_fpr"].kind is inspect.Parameter.KEYWORD_ONLY


def test_scores_stacked_with_labels_are_refused():
    with pytest.raises(TwinIDSError, match="1-D"):
        threshold_for_fpr(np.array([[0.1, 0.9], [0, 1]]), target_fpr=0.1)


def test_an_empty_score_array_is_refused():
    with pytest.raises(TwinIDSError, match="non-empty"):
        threshold_for_fpr([], target_fpr=0.01)


@pytest.mark.parametrize("target_fpr", [0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.01"])
def test_a_rate_outside_zero_one_is_refused(target_fpr):
    with pytest.raises(TwinIDSError, match=r"threshold\.target_fpr must be a number in \(0, 1\)"):
        threshold_for_fpr([1.0, 2.0], target_fpr=target_fpr)


def test_non_finite_scores_are_refused():
    with pytest.raises(TwinIDSError, match="NaN or infinite"):
        threshold_for_fpr([1.0, float("inf")], target_fpr=0.1)
