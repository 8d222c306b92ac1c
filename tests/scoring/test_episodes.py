"""Attack episodes are maximal attack runs per device; the BATADAL score follows Taormina et al. (2018)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinids.errors import TwinIDSError
from twinids.scoring import Episode, batadal_score, find_episodes

# Two episodes: steps 1-4 (alarm at step 3, i.e. 2 steps after its start) and steps 6-7 (no alarm).
LABELS = [0, 1, 1, 1, 1, 0, 1, 1, 0]
ALARMS = [0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_episodes_are_maximal_attack_runs_with_their_first_alarm():
    assert find_episodes(LABELS, ALARMS) == [
        Episode(group=None, start=1, duration=4, time_to_detection=2),
        Episode(group=None, start=6, duration=2, time_to_detection=None),
    ]


def test_batadal_score_of_one_episode_found_halfway_and_one_missed():
    result = batadal_score(LABELS, ALARMS)
    assert result.s_ttd == pytest.approx(1 - (2 / 4 + 2 / 2) / 2)  # 0.25
    assert result.tpr == pytest.approx(1 / 6)
    assert result.tnr == 1.0
    assert result.s_cm == pytest.approx((1 / 6 + 1) / 2)
    assert result.score == pytest.approx(0.5 * 0.25 + 0.5 * 7 / 12)  # 5 / 12


def test_episode_counts_and_ttds_count_a_miss_as_its_duration():
    result = batadal_score(LABELS, ALARMS)
    assert (result.episodes_detected, result.episodes_total) == (1, 2)
    assert result.time_to_detection == (2, 2)
    assert result.has_episodes


def test_an_alarm_on_the_first_attack_step_is_detection_time_zero():
    result = batadal_score([0, 1, 1, 0], [0, 1, 0, 0])
    assert result.time_to_detection == (0,)
    assert result.s_ttd == 1.0


def test_an_alarm_on_the_last_step_still_beats_a_miss():
    late = batadal_score([1, 1, 1, 1], [0, 0, 0, 1])
    assert late.episodes[0].time_to_detection == 3
    assert late.s_ttd == pytest.approx(1 - 3 / 4)
    assert late.s_ttd > batadal_score([1, 1, 1, 1], [0, 0, 0, 0]).s_ttd == 0.0


def test_an_alarm_just_before_an_episode_does_not_detect_it_and_costs_tnr():
    result = batadal_score([0, 0, 1, 1], [0, 1, 0, 0])
    assert not result.episodes[0].detected
    assert result.tnr == 0.5


def test_episodes_touching_the_ends_of_the_arrays_are_found():
    assert [(e.start, e.duration) for e in find_episodes([1, 1, 0, 0, 1], [0] * 5)] == [(0, 2), (4, 1)]


def test_adjacent_attack_steps_of_two_devices_are_two_episodes():
    episodes = find_episodes([1, 1, 1, 1], [0, 0, 1, 0], groups=["a", "a", "b", "b"])
    assert episodes == [
        Episode(group="a", start=0, duration=2, time_to_detection=None),
        Episode(group="b", start=2, duration=2, time_to_detection=0),
    ]


def test_interleaved_devices_are_followed_in_their_own_streams():
    # device a: labels 0 1 1, alarms 0 0 1 ; device b: labels 1 1 0, alarms 0 1 0 (rows alternate a, b)
    labels = [0, 1, 1, 1, 1, 0]
    alarms = [0, 0, 0, 1, 1, 0]
    episodes = find_episodes(labels, alarms, groups=["a", "b", "a", "b", "a", "b"])
    assert episodes == [
        Episode(group="a", start=2, duration=2, time_to_detection=1),
        Episode(group="b", start=1, duration=2, time_to_detection=1),
    ]


def test_group_values_come_back_as_plain_python_values():
    episodes = find_episodes(np.array([1, 1]), np.array([1, 0]), groups=np.array([7, 7]))
    assert type(episodes[0].group) is int


def test_without_episodes_s_ttd_and_the_score_are_nan_and_flagged_not_zero():
    result = batadal_score([0, 0, 0, 0], [0, 1, 0, 0])
    assert not result.has_episodes
    assert result.episodes_total == 0
    assert math.isnan(result.s_ttd) and math.isnan(result.tpr) and math.isnan(result.score)
    assert result.tnr == 0.75


def test_without_normal_steps_tnr_and_the_score_are_nan():
    result = batadal_score([1, 1], [1, 1])
    assert math.isnan(result.tnr) and math.isnan(result.s_cm) and math.isnan(result.score)
    assert result.s_ttd == 1.0


def test_gamma_weights_detection_time_against_the_confusion_matrix():
    assert batadal_score(LABELS, ALARMS, gamma=1.0).score == pytest.approx(0.25)
    assert batadal_score(LABELS, ALARMS, gamma=0.0).score == pytest.approx(7 / 12)


def test_boolean_inputs_score_like_zero_one_inputs():
    as_bool = batadal_score(np.array(LABELS, dtype=bool), np.array(ALARMS, dtype=bool))
    assert as_bool == batadal_score(LABELS, ALARMS)


def test_metrics_are_flat_floats_for_logging():
    assert batadal_score(LABELS, ALARMS).as_metrics() == pytest.approx(
        {
            "batadal_score": 5 / 12,
            "s_ttd": 0.25,
            "s_cm": 7 / 12,
            "tpr": 1 / 6,
            "tnr": 1.0,
            "episodes_detected": 1.0,
            "episodes_total": 2.0,
        }
    )


def test_class_codes_other_than_zero_one_are_refused():
    with pytest.raises(TwinIDSError, match="labels must be 0"):
        batadal_score([0, 2, 2], [0, 1, 1])


def test_misaligned_labels_and_alarms_are_refused():
    with pytest.raises(TwinIDSError, match="must align"):
        batadal_score([0, 1, 1], [0, 1])


def test_groups_of_another_length_are_refused():
    with pytest.raises(TwinIDSError, match="one device per step"):
        find_episodes([0, 1], [0, 1], groups=["a"])


def test_an_empty_stream_is_refused_by_the_score():
    with pytest.raises(TwinIDSError, match="at least one scored step"):
        batadal_score([], [])


@pytest.mark.parametrize("gamma", [-0.1, 1.5])
def test_gamma_outside_zero_one_is_refused(gamma):
    with pytest.raises(TwinIDSError, match="gamma"):
        batadal_score(LABELS, ALARMS, gamma=gamma)
