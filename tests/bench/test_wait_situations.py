"""The wait-policy bench: measuring interpreters that apply the settings they are given (or decide as the CLI
does), a busy neighbour that computes while measured and stops after, figures as ratios to same-run baselines."""

from __future__ import annotations

import pytest

from twinids.bench.wait_situations import CANDIDATES, busy_neighbour, run_probe, summarise
from twinids.cpu_policy import PASSIVE, SPIN_COUNT_ENV, WAIT_POLICY_ENV


def test_a_deciding_process_beside_a_busy_one_chooses_passive_and_reports_what_it_saw():
    with busy_neighbour(threads=1):
        report = run_probe(CANDIDATES["twinids"], steps=1, threads=1)
    assert report["settings"] == {WAIT_POLICY_ENV: PASSIVE}
    assert float(report["busy_cores_at_start"]) >= 0.5
    assert report["seconds_per_step"] > 0


def test_a_measured_candidate_runs_with_its_settings_only(monkeypatch):
    monkeypatch.setenv(SPIN_COUNT_ENV, "123")  # inherited from the bench's own process: would override PASSIVE
    report = run_probe(CANDIDATES["passive"], steps=1, threads=1)
    assert report["settings"] == {WAIT_POLICY_ENV: PASSIVE}
    assert report["spins_before_sleep"] == "0"


def test_the_busy_neighbour_computes_during_the_measurement_and_is_stopped_after():
    with busy_neighbour(threads=1) as neighbour:
        assert neighbour.poll() is None
    assert neighbour.poll() is not None


def test_the_choice_is_compared_with_the_fastest_candidate_of_the_same_situation_and_with_itself_alone():
    alone = {"openmp_default": 0.006, "passive": 0.0129, "twinids": 0.0066}
    beside = {"openmp_default": 0.180, "passive": 0.030, "twinids": 0.036}
    figures = summarise(alone, 0.0099, beside, load_after=1.0, chose_passive={"alone": 0.0, "beside_busy": 1.0})
    assert figures["wait_alone_choice_vs_fastest_ratio"] == pytest.approx(1.1)
    assert figures["wait_beside_busy_choice_vs_fastest_ratio"] == pytest.approx(1.2)
    assert figures["wait_beside_busy_openmp_default_vs_fastest_ratio"] == pytest.approx(6.0)
    assert figures["wait_after_command_choice_vs_alone_ratio"] == pytest.approx(1.5)
    assert figures["wait_beside_busy_choice_passive_share"] == 1.0 and figures["wait_alone_choice_passive_share"] == 0


@pytest.mark.parametrize(("load", "old_rule_passive"), [(0.3, 0.0), (1.0, 1.0)])
def test_the_bench_says_whether_the_load_average_rule_would_have_chosen_passive(monkeypatch, load, old_rule_passive):
    monkeypatch.setattr("twinids.bench.wait_situations.usable_cores", lambda: 2)
    figures = summarise({"twinids": 1.0}, after_command=1.0, beside_busy={"twinids": 1.0}, load_after=load)
    assert figures["wait_after_command_old_rule_passive"] == old_rule_passive
