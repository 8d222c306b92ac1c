"""What a sweep costs beyond its jobs: (wall time of a smoke sweep - the jobs' own fit and test time) / jobs.

Start-up (imports, the parent run, composing every job, worker processes) is the cost of many small jobs;
workers that import once keep it to a fraction of a second per job. The baseline, measured in the same run:
the same cost per job when each job is its own `twinids train` process. Both track into a store that already
exists, as a user's sweeps do after their first run: creating a new SQLite store (MLflow's schema
migrations, several seconds here) happens once per store, not per sweep or per job.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from twinids.errors import TwinIDSError


def measure_sweep_overhead(
    jobs: int = 20, parallel_jobs: int = 1, launcher: str = "pool", baseline_jobs: int = 3
) -> dict[str, float]:
    """Run a `jobs`-job smoke sweep (seeds 0..jobs-1) in a temporary folder and time what is not training.

    Returns:
        `sweep_overhead_per_job_s`, with the figures behind it: the sweep's wall time, the jobs' summed
        fit + test time (from each job's own timings), and the job count; with `baseline_jobs`, the same
        overhead for that many jobs run as separate `twinids train` processes, and the ratio of the two.

    Raises:
        TwinIDSError: if a job of the benchmark sweep does not finish.
    """
    from twinids.launch.sweep import SweepSettings, run_sweep
    from twinids.tracking.store import prepare_store

    with tempfile.TemporaryDirectory(prefix="twinids-sweep-bench-") as scratch:
        folder = Path(scratch)
        overrides = ["experiment=smoke", f"seed=range({jobs})", f"paths.output_dir={folder / 'outputs'}"]
        settings = SweepSettings(
            overrides,
            parallel_jobs=parallel_jobs,
            launcher=launcher,
            tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}",
            submitit_folder=folder / "submitit",
        )
        prepare_store("twinids", settings.tracking_uri)
        summary = run_sweep(settings)
        baseline = _separate_processes(folder, baseline_jobs) if baseline_jobs else None
    unfinished = [outcome for outcome in summary.outcomes if outcome.status != "FINISHED"]
    if unfinished:
        raise TwinIDSError(f"sweep benchmark: job {unfinished[0].line()}")
    training_s = sum(outcome.timings["fit_s"] + outcome.timings["test_s"] for outcome in summary.outcomes)
    figures = {
        "sweep_overhead_per_job_s": (summary.wall_s - training_s) / jobs,
        "sweep_wall_s": summary.wall_s,
        "sweep_jobs_fit_test_s": training_s,
        "sweep_jobs": float(jobs),
    }
    if baseline is not None:
        figures["separate_processes_overhead_per_job_s"] = baseline
        figures["sweep_vs_separate_processes_overhead_ratio"] = figures["sweep_overhead_per_job_s"] / baseline
    return figures


def _separate_processes(folder: Path, jobs: int) -> float:
    """Overhead per job of `jobs` smoke jobs run one `twinids train` process each (wall - fit - test)."""
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from twinids.tracking.store import prepare_store

    uri = f"sqlite:///{folder / 'baseline' / 'mlflow.db'}"
    prepare_store("twinids", uri)
    executable = Path(sys.executable).with_name("twinids")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "twinids.cli.main"]
    wall = 0.0
    for seed in range(jobs):
        began = time.perf_counter()
        overrides = ["experiment=smoke", f"seed={seed}", f"tracking.uri={uri}", f"paths.output_dir={folder / 'b'}"]
        done = subprocess.run([*command, "train", *overrides], cwd=folder, capture_output=True, text=True)
        wall += time.perf_counter() - began
        if done.returncode != 0:
            raise TwinIDSError(f"sweep benchmark baseline: twinids train failed: {done.stderr.strip()[-300:]}")
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("twinids").experiment_id])
    training = sum(run.data.metrics["time/fit_s"] + run.data.metrics["time/test_s"] for run in runs)
    return (wall - training) / jobs


if __name__ == "__main__":
    import sys

    figures = measure_sweep_overhead(*(int(arg) for arg in sys.argv[1:3]))
    print("  ".join(f"{name}={value:.3f}" for name, value in figures.items()))
