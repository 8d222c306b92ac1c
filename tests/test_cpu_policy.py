"""The OpenMP wait policy: chosen from the job count and what other processes do right now (never the lagging
load average), recorded as the settings torch's own OpenMP runtime reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from twinids import cpu_policy
from twinids.cpu_policy import (
    PASSIVE,
    SPIN_COUNT_ENV,
    WAIT_POLICY_ENV,
    applied_policy,
    apply_wait_policy,
    bundled_openmp_runtime,
    busy_cores,
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
    monkeypatch.setattr(cpu_policy, "busy_cores", lambda: 0.0)  # the cores are free now
    apply_wait_policy()
    assert WAIT_POLICY_ENV not in clean_environ and SPIN_COUNT_ENV not in clean_environ  # OpenMP's default waits
    assert clean_environ[cpu_policy.MEASURED_BUSY_ENV] == "0.00"


def test_a_lone_command_beside_a_busy_process_sleeps_at_once(clean_environ, monkeypatch):
    monkeypatch.setattr(cpu_policy, "busy_cores", lambda: 1.6)
    apply_wait_policy()
    assert clean_environ[WAIT_POLICY_ENV] == PASSIVE and spins_before_sleep(clean_environ) == 0


@pytest.mark.parametrize(("busy", "expected"), [(None, {}), (0.0, {}), (0.4, {}), (0.5, {WAIT_POLICY_ENV: PASSIVE})])
def test_a_lone_job_spins_unless_other_processes_keep_half_a_core_busy(busy, expected):
    assert wait_settings(1, busy) == expected


@pytest.mark.parametrize("jobs", [2, 3, 8])
def test_jobs_of_one_sweep_sleep_at_once(jobs):
    assert wait_settings(jobs) == {WAIT_POLICY_ENV: PASSIVE} == wait_settings(jobs, busy=0.0)
    assert spins_before_sleep(wait_settings(jobs)) == 0
    assert wait_policy(jobs) == PASSIVE


def test_the_busy_cores_sample_sees_a_process_that_computes_beside_it():
    script = "import time\nend = time.time() + 3\nwhile time.time() < end: pass"
    spinner = subprocess.Popen([sys.executable, "-c", script])
    try:
        time.sleep(0.5)  # let it start computing
        busy = busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and busy >= 0.6  # one core kept busy (the sample's own process sleeps)


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
        "busy_cores_at_start": "not measured",
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
    wait_settings(1, busy=0.0),
    wait_settings(1, busy=1.0),
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
