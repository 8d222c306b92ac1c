"""OpenMP wait settings measured in the situations a command meets: alone, right after another command, beside a
busy process.

The settings act only when torch loads its OpenMP runtime, so every measurement is a fresh interpreter (this
module run as `python -m twinids.bench.wait_situations`) timing LSTM training steps of the bench shape (batch 256,
window 10, 40 features, 2x64 LSTM, Adam, clipping). Candidates: OpenMP's default waits, `PASSIVE`, and
twinids' choice: a process that decides for itself, as the CLI does (`apply_wait_policy`), in each situation. Right
after another command the load average still counts the command that just ended. Every figure is a ratio against a
baseline from the same run: the fastest candidate in the same situation, or twinids' choice alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from twinids.cpu_policy import (
    PASSIVE,
    WAIT_ENVS,
    WAIT_POLICY_ENV,
    applied_policy,
    apply_wait_policy,
    replace_wait_settings,
    usable_cores,
)

CANDIDATES: dict[str, dict[str, str] | None] = {
    "openmp_default": {},
    "passive": {WAIT_POLICY_ENV: PASSIVE},
    "twinids": None,  # decides for itself, as the CLI does
}
CHOICE = "twinids"
SITUATIONS = ("alone", "after_command", "beside_busy")
BATCH, WINDOW, FEATURES, HIDDEN, LAYERS = 256, 10, 40, 64, 2
PROBE_TIMEOUT_S = 900


def measure_wait_situations(
    steps: int = 60, rounds: int = 3, previous_s: float = 30.0, threads: int = 2
) -> dict[str, float]:
    """Seconds per training step of each candidate in each situation, and the choice's ratios to its baselines.

    Args:
        steps: timed training steps per measurement (after 5 untimed ones).
        rounds: measurements per candidate and situation; candidates take turns within a round.
        previous_s: how long the command that runs before each "after_command" measurement computes.
        threads: torch threads of the measured process, of the previous command and of the busy neighbour.
    """
    alone = {name: [] for name in CANDIDATES}
    beside = {name: [] for name in CANDIDATES}
    after: list[float] = []
    loads: list[float] = []
    chose_passive = {situation: [] for situation in SITUATIONS}

    def measure(name: str, situation: str) -> float:
        report = run_probe(CANDIDATES[name], steps, threads)
        if name == CHOICE:
            chose_passive[situation].append(report["settings"].get(WAIT_POLICY_ENV) == PASSIVE)
            if situation == "after_command":
                loads.append(report["load_at_decision"])
        return report["seconds_per_step"]

    for _ in range(rounds):
        for name in CANDIDATES:
            alone[name].append(measure(name, "alone"))
    for _ in range(rounds):
        run_probe({}, steps, threads, run_for_s=previous_s)  # the previous command, which then ends
        after.append(measure(CHOICE, "after_command"))
    with busy_neighbour(threads):
        for _ in range(rounds):
            for name in CANDIDATES:
                beside[name].append(measure(name, "beside_busy"))
    passive_shares = {situation: sum(v) / len(v) for situation, v in chose_passive.items()}
    return summarise(
        {name: statistics.median(v) for name, v in alone.items()},
        statistics.median(after),
        {name: statistics.median(v) for name, v in beside.items()},
        max(loads),
        passive_shares,
    )


def summarise(
    alone: Mapping[str, float],
    after_command: float,
    beside_busy: Mapping[str, float],
    load_after: float,
    chose_passive: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The bench figures from median seconds per step: raw times, ratios to each baseline, the old rule's pick.

    `wait_after_command_old_rule_passive` is 1 where the load-average rule twinids used before (PASSIVE unless
    the 1-minute load is below half the cores) would have chosen PASSIVE right after the previous command;
    `wait_<situation>_choice_passive_share` says how often twinids' own choice was PASSIVE in each situation.
    """
    figures: dict[str, float] = {}
    for situation, times in (("alone", alone), ("beside_busy", beside_busy)):
        fastest = min(times.values())
        for name, seconds in times.items():
            figures[f"wait_{situation}_{name}_s_per_step"] = seconds
            figures[f"wait_{situation}_{name}_vs_fastest_ratio"] = seconds / fastest
        figures[f"wait_{situation}_choice_vs_fastest_ratio"] = times[CHOICE] / fastest
    figures["wait_after_command_twinids_s_per_step"] = after_command
    figures["wait_after_command_choice_vs_alone_ratio"] = after_command / alone[CHOICE]
    figures["wait_after_command_load"] = load_after
    figures["wait_after_command_old_rule_passive"] = float(load_after >= usable_cores() / 2)
    for situation, share in (chose_passive or {}).items():
        figures[f"wait_{situation}_choice_passive_share"] = share  # how often the choice was PASSIVE there
    return figures


def run_probe(
    settings: Mapping[str, str] | None, steps: int, threads: int, run_for_s: float | None = None
) -> dict[str, Any]:
    """Run one measuring interpreter and return what it reports.

    Args:
        settings: its OpenMP wait settings, or None to let it decide as the CLI does (`apply_wait_policy`).
        steps: timed steps; with `run_for_s`, it keeps stepping until that many seconds have passed.
        threads: its torch threads.
        run_for_s: run as a command of this duration (the "previous command") instead of a measurement.
    """
    environ = dict(os.environ)
    replace_wait_settings(settings or {}, environ)
    command = [sys.executable, "-m", "twinids.bench.wait_situations", "--steps", str(steps), "--threads", str(threads)]
    if settings is None:
        command.append("--decide")
    if run_for_s is not None:
        command += ["--run-for-s", str(run_for_s)]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"the wait-policy probe failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def busy_neighbour(threads: int) -> Iterator[subprocess.Popen[str]]:
    """A compute-bound process (large matrix products on `threads` threads) beside the measurement, then stopped."""
    environ = dict(os.environ)
    replace_wait_settings({WAIT_POLICY_ENV: PASSIVE}, environ)  # it computes; its few waits do not spin
    script = (
        f"import torch; torch.set_num_threads({threads}); a = torch.randn(1024, 1024); print('ready', flush=True)\n"
        "while True: a @ a"
    )
    neighbour = subprocess.Popen([sys.executable, "-c", script], env=environ, stdout=subprocess.PIPE, text=True)
    try:
        if neighbour.stdout is None or neighbour.stdout.readline().strip() != "ready":  # measure once it computes
            raise RuntimeError("the busy neighbour process did not start")
        yield neighbour
    finally:
        neighbour.terminate()
        neighbour.wait(timeout=30)


def _probe_main(argv: list[str] | None = None) -> None:
    """The measuring interpreter: decide (or keep) the wait settings, then import torch and time training steps."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--decide", action="store_true")
    parser.add_argument("--run-for-s", type=float)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    if args.decide:
        apply_wait_policy()
    settings = {name: os.environ[name] for name in WAIT_ENVS if name in os.environ}
    seconds = _step_seconds(args.steps, args.threads, args.run_for_s)
    report = {"seconds_per_step": seconds, "settings": settings, "load_at_decision": load, **applied_policy()}
    print(json.dumps(report))


def _step_seconds(steps: int, threads: int, run_for_s: float | None) -> float:
    """Median seconds of one LSTM training step of the bench shape on a fixed batch."""
    import torch

    from twinids.models.lstm import LSTMDetector

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = LSTMDetector(FEATURES, 2, hidden_size=HIDDEN, num_layers=LAYERS, dropout=0.1, bidirectional=False)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    windows, labels = torch.randn(BATCH, WINDOW, FEATURES), torch.randint(0, 2, (BATCH,))

    def step() -> float:
        began = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(windows), labels).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        return time.perf_counter() - began

    for _ in range(5):
        step()
    timings = [step() for _ in range(steps)]
    if run_for_s is not None:
        ends = time.perf_counter() + run_for_s
        while time.perf_counter() < ends:
            timings.append(step())
    return statistics.median(timings)


if __name__ == "__main__":
    _probe_main()
