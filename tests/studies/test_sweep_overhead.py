"""The sweep-overhead benchmark: wall time of a real smoke sweep minus its jobs' own fit and test time, per job."""

from __future__ import annotations

import pytest

from twinids.bench.report import TARGETS
from twinids.bench.sweep_overhead import measure_sweep_overhead


@pytest.mark.slow
def test_overhead_is_the_sweep_wall_time_not_spent_fitting_or_testing_per_job():
    figures = measure_sweep_overhead(jobs=2, launcher="debug", baseline_jobs=0)
    assert figures["sweep_jobs"] == 2
    assert 0 < figures["sweep_jobs_fit_test_s"] < figures["sweep_wall_s"]
    expected = (figures["sweep_wall_s"] - figures["sweep_jobs_fit_test_s"]) / 2
    assert figures["sweep_overhead_per_job_s"] == pytest.approx(expected)


@pytest.mark.slow
def test_the_baseline_is_the_same_overhead_for_jobs_run_as_separate_train_processes():
    figures = measure_sweep_overhead(jobs=1, launcher="debug", baseline_jobs=1)
    assert figures["separate_processes_overhead_per_job_s"] > 0
    ratio = figures["sweep_overhead_per_job_s"] / figures["separate_processes_overhead_per_job_s"]
    assert figures["sweep_vs_separate_processes_overhead_ratio"] == pytest.approx(ratio)


def test_the_bench_report_judges_sweep_overhead_against_one_second_per_job():
    target = next(t for t in TARGETS if t.key == "sweep_overhead_per_job_s")
    assert target.met(0.9) and not target.met(1.1)
