"""Runs started without a name get distinct readable names, even after seeding every random generator alike."""

from __future__ import annotations

import random

import numpy as np
import torch
from mlflow.tracking import MlflowClient

from twinids.tracking.run import default_run_name, start_run

TAGS = {"twinids.job": "train", "twinids.model": "lstm", "twinids.dataset": "synthetic_twin"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_unnamed_runs_after_the_same_seed_get_distinct_readable_names(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_ids = []
    for _ in range(3):
        seed_everything(42)
        with start_run("names", uri, run_name=None, tags=TAGS) as run:
            run_ids.append(run.run_id)
    client = MlflowClient(uri)
    names = [client.get_run(run_id).info.run_name for run_id in run_ids]
    assert len(set(names)) == 3, names
    assert all(name.startswith("lstm-synthetic_twin-") for name in names), names


def test_an_explicit_run_name_is_kept(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with start_run("names", uri, run_name="smoke", tags=TAGS) as run:
        pass
    assert MlflowClient(uri).get_run(run.run_id).info.run_name == "smoke"


def test_picking_a_name_leaves_the_global_random_generators_untouched():
    seed_everything(7)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    default_run_name("twinids", TAGS)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_an_eval_run_says_so_in_its_name_and_untagged_runs_use_the_experiment():
    assert default_run_name("twinids", {**TAGS, "twinids.job": "eval"}).startswith("eval-lstm-synthetic_twin-")
    assert default_run_name("bench").startswith("bench-")
