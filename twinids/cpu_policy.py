"""How a process's OpenMP threads wait for work: decided from how many jobs share the cores, never from the load.

torch's wheel bundles GNU OpenMP (`torch/lib/libgomp.so.1`), which reads `OMP_WAIT_POLICY` and `GOMP_SPINCOUNT`
once, when torch loads it: a waiting thread spins that many times, then sleeps. Unset, it spins 300,000 times
(milliseconds); `PASSIVE` sleeps at once; an explicit `GOMP_SPINCOUNT` wins over either. Spinning keeps a lone
process about 2-3x faster on LSTM steps than `PASSIVE`, but a long spin holds a core that a busy neighbour's
threads need. The 1-minute load average cannot arbitrate: it still reads about 1.0 a minute after a 2-thread
command ended, so a command started right after another one used to pick `PASSIVE` on free cores (a 17% slower
fit). A lone job therefore spins a bounded count, short enough to give a contended core back within a scheduler
slice; jobs of one sweep, which share the cores by design, sleep at once. `twinids bench` measures the choice
alone, right after another command and beside a busy process (`twinids/bench/wait_situations.py`).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
SPIN_COUNT_ENV = "GOMP_SPINCOUNT"
WAIT_ENVS = (WAIT_POLICY_ENV, SPIN_COUNT_ENV)
PASSIVE = "PASSIVE"
# About 0.1-1 ms of `pause` spins depending on the CPU: it covers the microsecond gaps between torch's parallel
# regions (what spinning is for) and ends well within a scheduler slice (what a busy neighbour needs back).
LONE_JOB_SPIN_COUNT = "30000"

# libgomp's own defaults (its GOMP_SPINCOUNT documentation): the spin count when GOMP_SPINCOUNT is not set.
_LIBGOMP_SPINS = {"ACTIVE": 30_000_000_000, PASSIVE: 0}
_LIBGOMP_DEFAULT_SPINS = 300_000
_SPIN_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def wait_settings(parallel_jobs: int = 1) -> dict[str, str]:
    """The OpenMP wait settings for one of `parallel_jobs` processes this command starts on the usable cores.

    A lone job spins a bounded count (`LONE_JOB_SPIN_COUNT`); jobs of one sweep get `PASSIVE`, so that a job
    waiting on its own threads never holds a core its sibling jobs could use. Nothing here reads the load
    average: it lags by a minute and would judge a command by the one that ran before it.
    """
    if parallel_jobs < 1:
        raise ValueError(f"parallel_jobs must be 1 or more; got {parallel_jobs}")
    return {SPIN_COUNT_ENV: LONE_JOB_SPIN_COUNT} if parallel_jobs == 1 else {WAIT_POLICY_ENV: PASSIVE}


def wait_policy(parallel_jobs: int = 1, cores: int | None = None, load: float | None = None) -> str | None:
    """The `OMP_WAIT_POLICY` part of `wait_settings` (None: unset), for callers that carry only that variable.

    `cores` and `load` are accepted for the sweep launcher's call and ignored: the choice depends on the job
    count alone (see the module docstring for why not on the load average).
    """
    return wait_settings(parallel_jobs).get(WAIT_POLICY_ENV)


def apply_wait_policy(parallel_jobs: int = 1) -> None:
    """Put `wait_settings` into this process's environment unless the user set either variable.

    Call before importing torch: its OpenMP runtime reads them once, when it loads.
    """
    if any(name in os.environ for name in WAIT_ENVS):
        return
    os.environ.update(wait_settings(parallel_jobs))


def replace_wait_settings(settings: Mapping[str, str], environ: MutableMapping[str, str] = os.environ) -> None:
    """Make `settings` the only OpenMP wait settings in `environ` (an inherited spin count would override PASSIVE)."""
    for name in WAIT_ENVS:
        environ.pop(name, None)
    environ.update(settings)


def spins_before_sleep(environ: Mapping[str, str] = os.environ) -> int | None:
    """How many times GNU OpenMP spins before a waiting thread sleeps under `environ` (None: it never sleeps).

    Follows libgomp's documented rules: a valid `GOMP_SPINCOUNT` wins; otherwise `PASSIVE` 0, `ACTIVE` 30
    billion, unset 300,000. (libgomp spins far less when a team has more threads than usable cores.)
    """
    spin_count = environ.get(SPIN_COUNT_ENV)
    if spin_count is not None:
        text = spin_count.strip()
        if text.upper() in ("INFINITE", "INFINITY"):
            return None
        match = re.fullmatch(r"(\d+)\s*([kMGT]?)", text)
        if match:
            return int(match.group(1)) * _SPIN_SUFFIXES[match.group(2)]
    policy = environ.get(WAIT_POLICY_ENV, "").strip().upper()
    return _LIBGOMP_SPINS.get(policy, _LIBGOMP_DEFAULT_SPINS)


def bundled_openmp_runtime() -> Path | None:
    """The OpenMP runtime shipped inside the installed torch package (None: torch uses the system's, if any).

    Found without importing torch, so the wait settings can still be changed after asking.
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    library_dir = Path(next(iter(spec.submodule_search_locations))) / "lib"
    for pattern in ("libgomp*.so*", "libiomp5*.so*", "libomp*.so*"):
        found = sorted(library_dir.glob(pattern))
        if found:
            return found[0]
    return None


def applied_policy(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The OpenMP wait settings in force, as a run records them: both variables and the spins they amount to."""
    spins = spins_before_sleep(environ)
    runtime = bundled_openmp_runtime()
    return {
        WAIT_POLICY_ENV: environ.get(WAIT_POLICY_ENV, "unset"),
        SPIN_COUNT_ENV: environ.get(SPIN_COUNT_ENV, "unset"),
        "spins_before_sleep": "never sleeps" if spins is None else str(spins),
        "openmp_runtime": runtime.name if runtime is not None else "not bundled with torch",
    }
