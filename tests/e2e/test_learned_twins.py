"""End to end through the CLI: a learned virtual twin on BATADAL's competition protocol, and the physics twin."""

from __future__ import annotations

import re

import mlflow
import pytest

pytestmark = pytest.mark.slow


def logged_test_metrics(tmp_path, stdout: str) -> dict[str, float]:
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run_id = re.search(r"run id: ([0-9a-f]{32})", stdout).group(1)
    return {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("test/")}


def test_a_forecaster_trained_on_dataset03_detects_batadal_test_attacks_and_eval_reproduces_it(
    twinids_cli, shared_datasets, tmp_path
):
    trained = twinids_cli(
        "train",
        "experiment=batadal_twin",  # the forecaster row of experiments/results/learned_twins.md
        f"data.root={shared_datasets}",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
    )
    assert trained.returncode == 0, trained.stderr
    logged = logged_test_metrics(tmp_path, trained.stdout)
    assert logged["test/episodes_total"] == 7  # the test file's attacks 8-14
    # the supervised random forest reaches S 0.39 here (experiments/results/learned_twins.md)
    assert 0.8 < logged["test/auroc"] < 1.0 and 0.6 < logged["test/batadal_s"] < 1.0
    run_id = re.search(r"run id: ([0-9a-f]{32})", trained.stdout).group(1)
    evaluated = twinids_cli("eval", run_id)
    assert evaluated.returncode == 0, evaluated.stderr
    assert logged_test_metrics(tmp_path, evaluated.stdout) == logged


def test_a_score_model_under_task_classify_fails_in_one_line_without_a_run(twinids_cli, tmp_path):
    result = twinids_cli("train", "model=lstm_autoencoder", "experiment=smoke")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "task=score" in lines[0], result.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_physics_twins_residual_detects_simulated_attacks(twinids_cli, tmp_path):
    trained = twinids_cli("train", "model=physics_residual", "task=score", "data.source.n_steps=1500")
    assert trained.returncode == 0, trained.stderr
    logged = logged_test_metrics(tmp_path, trained.stdout)
    assert logged["test/auroc"] > 0.9 and logged["test/episodes_detected"] > 0
