"""The OpenMP wait policy: chosen from the job count (never the lagging load average), bounded for a lone job,
recorded as the settings torch's own OpenMP runtime reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from twinids import cpu_policy
from twinids.cpu_policy import (
    PASSIVE,
    SPIN_COUNT_ENV,
    WAIT_POLICY_ENV,
    applied_policy,
    apply_wait_policy,
    bundled_openmp_runtime,
    replace_wait_settings,
    spins_before_sleep,
    wait_policy,
    wait_settings,
)


@pytest.fixture
def clean_environ(monkeypatch):
    for name in (WAIT_POLICY_ENV, SPIN_COUNT_ENV):
        monkeypatch.delenv(name, raising=False)
    return os.environ


@pytest.mark.parametrize("load", [0.05, 1.0, 1.9, 6.0])
def test_a_command_right_after_another_chooses_what_it_would_choose_alone(clean_environ, monkeypatch, load):
    # the 1-minute load average still counts a command that ended seconds ago: it must not change the choice
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    apply_wait_policy()
    assert {name: clean_environ.get(name) for name in (WAIT_POLICY_ENV, SPIN_COUNT_ENV)} == {
        WAIT_POLICY_ENV: None,
        SPIN_COUNT_ENV: cpu_policy.LONE_JOB_SPIN_COUNT,
    }


def test_a_lone_job_spins_a_bounded_count_far_below_openmps_default_and_above_passive():
    spins = spins_before_sleep(wait_settings(1))
    assert spins is not None and 0 < spins < spins_before_sleep({}) // 5


@pytest.mark.parametrize("jobs", [2, 3, 8])
def test_jobs_of_one_sweep_sleep_at_once(jobs):
    assert wait_settings(jobs) == {WAIT_POLICY_ENV: PASSIVE}
    assert spins_before_sleep(wait_settings(jobs)) == 0


@pytest.mark.parametrize(("jobs", "load", "expected"), [(1, 0.2, None), (1, 3.0, None), (2, 0.2, PASSIVE)])
def test_the_launchers_call_gets_the_wait_policy_variable_whatever_load_it_passes(jobs, load, expected):
    assert wait_policy(jobs, 2, load) == expected


def test_zero_jobs_is_refused():
    with pytest.raises(ValueError, match="parallel_jobs must be 1 or more"):
        wait_settings(0)


@pytest.mark.parametrize("user", [{WAIT_POLICY_ENV: "ACTIVE"}, {SPIN_COUNT_ENV: "1000"}, {WAIT_POLICY_ENV: PASSIVE}])
def test_settings_the_user_made_are_left_as_they_are(clean_environ, monkeypatch, user):
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    apply_wait_policy()
    assert {name: clean_environ[name] for name in (WAIT_POLICY_ENV, SPIN_COUNT_ENV) if name in clean_environ} == user


def test_replacing_settings_drops_an_inherited_spin_count_that_would_override_passive():
    environ = {SPIN_COUNT_ENV: "30000", "PATH": "/bin"}
    replace_wait_settings({WAIT_POLICY_ENV: PASSIVE}, environ)
    assert environ == {WAIT_POLICY_ENV: PASSIVE, "PATH": "/bin"}


def test_the_applied_policy_names_both_variables_and_the_spins_they_amount_to():
    assert applied_policy({SPIN_COUNT_ENV: "30k"}) | {"openmp_runtime": "-"} == {
        WAIT_POLICY_ENV: "unset",
        SPIN_COUNT_ENV: "30k",
        "spins_before_sleep": "30000",
        "openmp_runtime": "-",
    }
    assert applied_policy({SPIN_COUNT_ENV: "infinite"})["spins_before_sleep"] == "never sleeps"


ENVIRONMENTS = [
    {},
    {WAIT_POLICY_ENV: PASSIVE},
    {WAIT_POLICY_ENV: "active"},
    {SPIN_COUNT_ENV: "30k"},
    {WAIT_POLICY_ENV: PASSIVE, SPIN_COUNT_ENV: "2M"},  # an explicit spin count wins over PASSIVE
    {SPIN_COUNT_ENV: "lots"},  # invalid: ignored, the wait policy's default applies
    wait_settings(1),
    wait_settings(2),
]


@pytest.mark.parametrize("settings", ENVIRONMENTS, ids=lambda s: " ".join(f"{k}={v}" for k, v in s.items()) or "none")
def test_the_spin_count_computed_is_the_one_torchs_openmp_runtime_reports(settings):
    runtime = bundled_openmp_runtime()
    assert runtime is not None and runtime.name.startswith("libgomp"), (
        f"torch now bundles {runtime}: GOMP_SPINCOUNT is GNU OpenMP's; Intel/LLVM OpenMP needs KMP_BLOCKTIME"
    )
    environ = {k: v for k, v in os.environ.items() if k not in (WAIT_POLICY_ENV, SPIN_COUNT_ENV)}
    environ |= {**settings, "OMP_DISPLAY_ENV": "VERBOSE"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(runtime)],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    reported = re.search(r"GOMP_SPINCOUNT = '(\d+)'", loaded.stderr)
    assert reported is not None, loaded.stderr
    assert int(reported.group(1)) == spins_before_sleep(settings)
