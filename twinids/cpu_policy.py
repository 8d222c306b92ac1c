"""How a process's OpenMP threads wait for work: decided from how many jobs share the cores and from what the
other processes do right now, never from the lagging load average.

torch's wheel bundles GNU OpenMP (`torch/lib/libgomp.so.1`), which reads `OMP_WAIT_POLICY` and `GOMP_SPINCOUNT`
once, when torch loads it: a waiting thread spins that many times, then sleeps. Unset, it spins 300,000 times;
`PASSIVE` sleeps at once; an explicit `GOMP_SPINCOUNT` wins over either. Measured with `twinids bench` (LSTM steps
of the bench shape, 2 cores): alone, OpenMP's default waits are fastest and `PASSIVE` is about 2x slower; beside a
busy process, `PASSIVE` is fastest and spinning is about 2x slower; a bounded spin count (30,000) was worse than
either in both situations (1.5x alone, 8x beside a busy process). So a lone command samples, for a tenth of a
second, how many cores the other processes keep busy (`/proc/stat`: no lag, unlike the 1-minute load average,
which still counts a command that ended a minute ago) and sleeps at once only when they keep half a core or
more busy; jobs of one sweep, which share the cores by design, always sleep at once. `twinids bench` measures
the choice alone, right after another command and beside a busy process (`twinids/bench/wait_situations.py`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
SPIN_COUNT_ENV = "GOMP_SPINCOUNT"
WAIT_ENVS = (WAIT_POLICY_ENV, SPIN_COUNT_ENV)
PASSIVE = "PASSIVE"
BUSY_NEIGHBOUR_CORES = 0.5  # cores other processes keep busy from which a lone command's threads sleep at once
SAMPLE_S = 0.1  # how long the CPU counters are sampled: ten scheduler ticks per core
MEASURED_BUSY_ENV = "TWINIDS_BUSY_CORES_AT_START"  # what the sample saw, recorded with the run

# libgomp's own defaults (its GOMP_SPINCOUNT documentation): the spin count when GOMP_SPINCOUNT is not set.
_LIBGOMP_SPINS = {"ACTIVE": 30_000_000_000, PASSIVE: 0}
_LIBGOMP_DEFAULT_SPINS = 300_000
_SPIN_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_cores(interval_s: float = SAMPLE_S) -> float | None:
    """Cores the other processes kept busy over the next `interval_s` (this one sleeps meanwhile), from the
    kernel's CPU counters; None where they cannot be read (not Linux)."""
    try:
        first = _cpu_counters()
        time.sleep(interval_s)
        second = _cpu_counters()
    except (OSError, ValueError, IndexError):
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return None if total <= 0 else (1.0 - idle / total) * (os.cpu_count() or 1)


def _cpu_counters() -> tuple[int, int]:
    """(all, idle) ticks of every CPU since boot, from the first line of /proc/stat (idle counts iowait too)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values), values[3] + values[4]


def wait_settings(parallel_jobs: int = 1, busy: float | None = None) -> dict[str, str]:
    """The OpenMP wait settings for one of `parallel_jobs` processes this command starts on the usable cores.

    Jobs of one sweep get `PASSIVE`, so a job waiting on its own threads never holds a core its sibling jobs
    could use. A lone job keeps OpenMP's default (spinning) waits unless other processes keep `busy` >=
    BUSY_NEIGHBOUR_CORES cores busy right now (None: unknown, treated as quiet).
    """
    if parallel_jobs < 1:
        raise ValueError(f"parallel_jobs must be 1 or more; got {parallel_jobs}")
    if parallel_jobs > 1 or (busy is not None and busy >= BUSY_NEIGHBOUR_CORES):
        return {WAIT_POLICY_ENV: PASSIVE}
    return {}


def wait_policy(parallel_jobs: int = 1, busy: float | None = None) -> str | None:
    """The `OMP_WAIT_POLICY` part of `wait_settings` (None: unset), for callers that carry only that variable."""
    return wait_settings(parallel_jobs, busy).get(WAIT_POLICY_ENV)


def apply_wait_policy(parallel_jobs: int = 1) -> None:
    """Put `wait_settings` into this process's environment unless the user set either variable; a lone job
    first samples how busy the other processes keep the cores (`busy_cores`, a tenth of a second).

    Call before importing torch: its OpenMP runtime reads them once, when it loads.
    """
    if any(name in os.environ for name in WAIT_ENVS):
        return
    busy = busy_cores() if parallel_jobs == 1 else None
    if busy is not None:
        os.environ[MEASURED_BUSY_ENV] = f"{busy:.2f}"
    os.environ.update(wait_settings(parallel_jobs, busy))


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
        "busy_cores_at_start": environ.get(MEASURED_BUSY_ENV, "not measured"),
        "openmp_runtime": runtime.name if runtime is not None else "not bundled with torch",
    }
