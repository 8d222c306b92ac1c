"""How a process should wait for its OpenMP threads: decided by how many processes share the cores.

Measured on these 2-core machines (README, `twinids bench`): one process alone on a quiet machine trains about
3x faster with OpenMP's default waits (spin, then sleep) than with `OMP_WAIT_POLICY=PASSIVE` (an LSTM epoch
1.05 s vs 3.60 s), but spinning waits make it 5-30x slower as soon as other processes compete for the cores,
where PASSIVE keeps its speed. Must be decided before torch loads its OpenMP runtime.
"""

from __future__ import annotations

import os

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def wait_policy(parallel_jobs: int = 1, cores: int | None = None, load: float | None = None) -> str | None:
    """`PASSIVE`, or None for OpenMP's default: only a lone job on a quiet machine (1-minute load average below
    half the cores) keeps the default, spinning waits."""
    cores = cores or usable_cores()
    load = os.getloadavg()[0] if load is None else load
    return None if parallel_jobs == 1 and load < cores / 2 else PASSIVE


def apply_wait_policy(parallel_jobs: int = 1) -> None:
    """Set `OMP_WAIT_POLICY` for this process unless the user set it (call before importing torch)."""
    policy = wait_policy(parallel_jobs)
    if policy is not None:
        os.environ.setdefault(WAIT_POLICY_ENV, policy)
