"""A researcher's own detector, in their own package and config folder, goes through every twinids job unchanged.

The package (`tests/fixtures/researcher/my_pkg`) and its YAML (`tests/fixtures/researcher/configs/model/`) live
outside twinids: they reach it only through PYTHONPATH and the `configs/` folder of the working directory, as a
user's would. `my_conv` is their own net under twinids's Lightning detector; `my_distance` is a whole detector
class of their own.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import mlflow
import pytest

from twinids.errors import TwinIDSError

RESEARCHER = Path(__file__).resolve().parents[1] / "fixtures" / "researcher"
SMALL = ["experiment=smoke", "data.source.n_steps=600", "data.window=8", "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def researcher(tmp_path_factory, cli_runner_factory):
    """A working folder holding the researcher's `configs/`, with their package importable; a CLI runner there."""
    workdir = tmp_path_factory.mktemp("researcher")
    shutil.copytree(RESEARCHER / "configs", workdir / "configs")
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(RESEARCHER), before]))
    yield cli_runner_factory(workdir), workdir
    if before is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = before


def run_id_of(stdout: str) -> str:
    match = re.search(r"run id: ([0-9a-f]{32})", stdout)
    assert match, stdout
    return match.group(1)


def tracked_run(workdir: Path, run_id: str):
    return mlflow.tracking.MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}").get_run(run_id)


@pytest.fixture(scope="module")
def trained_conv(researcher):
    cli, _ = researcher
    result = cli("train", "model=my_conv", *SMALL)
    assert result.returncode == 0, result.stderr
    return run_id_of(result.stdout)


@pytest.mark.slow
def test_an_own_net_trains_and_evaluates_to_the_same_test_metrics(researcher, trained_conv):
    cli, workdir = researcher
    result = cli("eval", trained_conv)
    assert result.returncode == 0, result.stderr
    trained, evaluated = tracked_run(workdir, trained_conv), tracked_run(workdir, run_id_of(result.stdout))
    assert trained.data.params["model/module/net/_target_"] == "my_pkg.ConvDetector"
    assert evaluated.data.metrics["test/f1_macro"] == trained.data.metrics["test/f1_macro"]
    audited = cli("audit", trained_conv, "windows_per_side=200")  # its module is a ClassifierModule: it has losses
    assert audited.returncode == 0, audited.stderr
    assert "audit/loss_threshold/mia_auc" in tracked_run(workdir, trained_conv).data.metrics


@pytest.mark.slow
def test_an_own_net_trains_with_dp_sgd_and_reports_its_epsilon(researcher):
    cli, workdir = researcher
    result = cli("train", "model=my_conv", "privacy=dp", "privacy.target_epsilon=8", *SMALL)
    assert result.returncode == 0, result.stderr
    run = tracked_run(workdir, run_id_of(result.stdout))
    assert 0 < run.data.metrics["privacy/epsilon"] <= 8.0


@pytest.mark.slow
def test_an_own_net_is_fine_tuned_from_its_pre_training_run(researcher, trained_conv):
    cli, workdir = researcher
    result = cli(
        "train", "model=my_conv", "transfer=finetune", f"transfer.source={trained_conv}", "transfer.freeze=[conv]",
        "seed=3", *SMALL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tracked_run(workdir, run_id_of(result.stdout))
    assert run.data.tags["twinids.transfer.source_run_id"] == trained_conv


@pytest.mark.slow
def test_an_own_net_sweeps_over_seeds(researcher):
    cli, workdir = researcher
    result = cli("sweep", "model=my_conv", *SMALL, "seed=1,2", "--launcher", "debug")
    assert result.returncode == 0, result.stderr
    client = mlflow.tracking.MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("twinids")
    runs = client.search_runs([experiment.experiment_id], "params.`model/name` = 'my_conv' and params.seed != '42'")
    runs = [run for run in runs if run.data.tags.get("twinids.job") == "train" and run.data.params["seed"] in "12"]
    assert sorted(run.data.params["seed"] for run in runs) == ["1", "2"]
    assert {run.info.status for run in runs} == {"FINISHED"}


@pytest.mark.slow
def test_an_own_detector_class_trains_and_evaluates_and_refuses_dp(researcher):
    cli, workdir = researcher
    result = cli("train", "model=my_distance", "task=score", *SMALL)
    assert result.returncode == 0, result.stderr
    run_id = run_id_of(result.stdout)
    assert "test/f1_macro" in tracked_run(workdir, run_id).data.metrics
    evaluated = cli("eval", run_id)
    assert evaluated.returncode == 0, evaluated.stderr
    not_auditable = cli("audit", run_id)
    assert not_auditable.returncode != 0
    assert not_auditable.stderr.strip().splitlines() == [
        "error: model 'my_distance' offers no per-window loss (Auditable.window_losses), which a membership-inference "
        "attack reads; twinids audit cannot attack it"
    ]
    refused = cli("train", "model=my_distance", "task=score", "privacy=dp", *SMALL)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "error: model=my_distance cannot train with privacy=dp: it takes no gradient steps; use a neural model "
        "(e.g. model=lstm) or privacy=none"
    ]


def test_a_detector_target_that_is_not_a_detector_is_refused_naming_what_it_lacks():
    from omegaconf import OmegaConf

    from twinids.training.detector import detector_class

    model = OmegaConf.create({"name": "x", "detector": {"_target_": "collections.OrderedDict"}})
    with pytest.raises(TwinIDSError, match=r"is not a twinids detector: it lacks .*fit.*supports"):
        detector_class(model)


def test_a_model_that_names_its_detector_by_a_word_is_refused():
    from omegaconf import OmegaConf

    from twinids.training.detector import detector_class

    with pytest.raises(TwinIDSError, match=r"must name its detector class: model.detector._target_"):
        detector_class(OmegaConf.create({"name": "x", "detector": "lightning"}))


def test_a_stored_card_of_an_older_version_names_its_detector_class():
    from twinids.training.detector import detector_class
    from twinids.training.model_card import ModelCard

    stored = {"config": {"model": {"name": "lstm", "detector": "lightning"}}, "overrides": [], "class_names": ["a"]}
    card = ModelCard.from_dict(stored, Path("old.ckpt"))
    assert detector_class(card.config["model"]).__name__ == "LightningDetector"


def test_a_stored_card_from_before_checkpoint_selection_and_canaries_says_what_that_run_did():
    from twinids.training.model_card import ModelCard

    config = {"callbacks": {"monitor": "val/f1_macro"}, "privacy": {"name": "dp", "delta": 1e-5}}
    card = ModelCard.from_dict({"config": config, "overrides": [], "class_names": ["a"]}, Path("old.ckpt"))
    assert card.config["callbacks"]["select"] == "best"  # early stopping and the best epoch, as then
    old_audit = {"canaries": 0, "kind": "white_box", "seed": 0, "delta": 1e-5, "score": "sum"}
    assert card.config["privacy"]["audit"] == old_audit
    last_session = {"name": "dp", "delta": 1e-6, "audit": {"canaries": 500, "seed": 3}}  # white-box canaries then
    card = ModelCard.from_dict({"config": {"privacy": last_session}, "overrides": [], "class_names": ["a"]}, Path("x"))
    assert card.config["privacy"]["audit"] == {
        "canaries": 500,
        "kind": "white_box",
        "seed": 3,
        "delta": 1e-6,
        "score": "sum",
    }
    assert (
        ModelCard.from_dict(
            {"config": {"data": {"window": 5}}, "overrides": [], "class_names": ["a"]}, Path("x")
        ).config["data"]["holdout_attacks"]
        is None
    )  # from before data.holdout_attacks: every attack type trained on
    no_audit = {"name": "none"}  # a non-private run from before the audit: no canaries
    card = ModelCard.from_dict({"config": {"privacy": no_audit}, "overrides": [], "class_names": ["a"]}, Path("x"))
    assert card.config["privacy"]["audit"]["canaries"] == 0
