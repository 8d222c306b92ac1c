"""How fast `compare` reads a large store: a synthetic store of N realistic runs, and the time to compare them.

Run it with `python -m twinids.bench.compare_store [N]`; tests use `write_synthetic_runs` for small stores.
"""

from __future__ import annotations

import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"lstm": 0.93, "lstm_sae_mha": 0.94, "random_forest": 0.91, "logistic_regression": 0.84}
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, None)  # None: non-private
DATASETS = ("nsl_kdd", "unsw_nb15")
FILLER_PARAMS = 80  # a real run logs ~90 flattened config keys


def synthetic_run(model: str, epsilon: float | None, dataset: str, seed: int) -> dict[str, dict[str, str | float]]:
    """Params, metrics and tags shaped like a real `twinids train` run (values made up, deterministic).

    Like a real run, it carries its repeat hash, the same for every seed of one setting.
    """
    from twinids.tracking.config_hash import REPEAT_HASH_TAG, repeat_hash_of_params

    rng = random.Random(f"{model}-{epsilon}-{dataset}-{seed}")
    private = epsilon is not None
    f1 = MODELS[model] - (0.12 / (1 + epsilon) if private else 0.0) - (0.03 if dataset == "unsw_nb15" else 0.0)
    f1 += rng.gauss(0, 0.005)
    params: dict[str, str | float] = {
        "model/name": model,
        "data/name": dataset,
        "seed": str(seed),
        "privacy/name": "dp" if private else "none",
        "task": "classify",
        "tracking/mlflow_experiment": "twinids",
        **{f"trainer/setting_{i}": str(i) for i in range(FILLER_PARAMS)},
    }
    tags: dict[str, str | float] = {
        "twinids.job": "train",
        "twinids.model": model,
        "twinids.dataset": dataset,
        "twinids.privacy": params["privacy/name"],
        "twinids.seed": str(seed),
        "twinids.code_version": "0.1.0+gsynthetic",
        "twinids.data_fingerprint": f"files-{dataset}",
        **{f"twinids.versions.lib{i}": "1.0" for i in range(8)},
        **{f"twinids.machine.field{i}": "x" for i in range(6)},
    }
    metrics: dict[str, str | float] = {
        f"{split}/{name}": value
        for split in ("test", "val")
        for name, value in {
            "f1_macro": f1,
            "accuracy": f1 + 0.02,
            "precision_macro": f1 + 0.01,
            "recall_macro": f1 - 0.01,
            "auroc": min(f1 + 0.04, 1.0),
            "fpr": 1 - f1 - 0.05,
        }.items()
    }
    if private:
        params["privacy/target_epsilon"] = str(epsilon)
        tags["twinids.epsilon"] = str(epsilon)
        metrics["privacy/epsilon"] = epsilon * 0.98
    tags[REPEAT_HASH_TAG] = repeat_hash_of_params(params)
    return {"params": params, "metrics": metrics, "tags": tags}


def write_synthetic_runs(tracking_uri: str, n_runs: int, experiment: str = "twinids") -> str:
    """Log `n_runs` finished runs cycling over models x epsilons x datasets, seeds counting up; return the id.

    Each run is one create, one `log_batch` and one terminate, the fewest writes MLflow's client allows.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    grid = list(itertools.product(MODELS, EPSILONS, DATASETS))
    now = int(time.time() * 1000)
    for index in range(n_runs):
        model, epsilon, dataset = grid[index % len(grid)]
        run = synthetic_run(model, epsilon, dataset, seed=index // len(grid))
        created = client.create_run(experiment_id, tags={"mlflow.runName": f"{model}-{dataset}-{index}"})
        client.log_batch(
            created.info.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in run["metrics"].items()],
            params=[Param(k, str(v)) for k, v in run["params"].items()],
            tags=[RunTag(k, str(v)) for k, v in run["tags"].items()],
        )
        client.set_terminated(created.info.run_id, "FINISHED")
    return experiment_id


def benchmark_compare(n_runs: int = 1000, folder: Path | None = None) -> dict[str, float]:
    """Seconds to write a synthetic store of `n_runs` and to compare it (read, group, aggregate, render).

    The store is written under `folder` (a temporary folder by default) and reused when it already holds
    `n_runs` runs, so repeated timings skip the slow writing.
    """
    from twinids.results.compare import compare_runs
    from twinids.results.table_format import render
    from twinids.results.tracked_runs import RunSelection, load_runs

    with tempfile.TemporaryDirectory(prefix="twinids-bench-") as scratch:
        root = Path(folder or scratch)
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / f'store-{n_runs}.db'}"
        started = time.perf_counter()
        if not (root / f"store-{n_runs}.db").exists():
            write_synthetic_runs(uri, n_runs)
        written = time.perf_counter()
        runs = load_runs(RunSelection(experiment="twinids"), uri)
        loaded = time.perf_counter()
        comparison = compare_runs(runs)
        render(comparison, "md")
        done = time.perf_counter()
    return {
        "runs": float(len(runs)),
        "write_s": written - started,
        "load_s": loaded - written,
        "aggregate_and_render_s": done - loaded,
        "compare_s": done - written,
    }


if __name__ == "__main__":
    n_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    figures = benchmark_compare(n_runs, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print("  ".join(f"{name}={value:.3f}" for name, value in figures.items()))
