"""`train(cfg)` and `evaluate(source)` called in-process on the smoke overlay: what a sweep or a test calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twinids.errors import TwinIDSError
from twinids.training.evaluate import evaluate
from twinids.training.train import train

METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "auroc", "fpr")


@pytest.fixture(scope="module")
def lstm_job(tmp_path_factory, smoke_config):
    workdir = tmp_path_factory.mktemp("lstm")
    cfg = smoke_config(workdir, "model.module.net.hidden_size=16", "seed=3")
    return workdir, cfg, train(cfg, ["seed=3"])


def test_train_returns_test_metrics_recall_per_attack_type_and_a_finished_run(lstm_job, mlflow_client):
    workdir, _, result = lstm_job
    assert {f"test/{name}" for name in METRICS} <= set(result.metrics)
    assert any(name.startswith("test/recall_attack/") for name in result.metrics)
    run = mlflow_client(workdir).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["twinids.model"] == "lstm" and run.data.tags["twinids.privacy"] == "none"
    assert result.metrics["test/f1_macro"] == pytest.approx(run.data.metrics["test/f1_macro"])
    assert result.timings["fit_s"] > 0 and result.timings["test_s"] > 0


def test_the_checkpoint_is_plain_data_with_the_model_card(lstm_job):
    _, _, result = lstm_job
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    card = checkpoint["twinids"]
    assert card["run_id"] == result.run_id and card["overrides"] == ["seed=3"]
    assert card["class_names"] == ["normal", "attack"] and card["attack_names"][0] == "normal"


def test_evaluate_in_process_reproduces_the_training_run_exactly(lstm_job, mlflow_client):
    workdir, cfg, result = lstm_job
    evaluated = evaluate(result.run_id, tracking_uri=cfg.tracking.uri)
    assert evaluated.metrics == result.metrics
    eval_run = mlflow_client(workdir).get_run(evaluated.run_id)
    assert eval_run.data.tags["twinids.source_run_id"] == result.run_id


def test_every_loss_term_of_a_net_with_auxiliary_losses_is_logged_under_train(tmp_path, smoke_config, mlflow_client):
    cfg = smoke_config(tmp_path, "model=lstm_sae_mha", "trainer.max_epochs=1")
    result = train(cfg)
    logged = mlflow_client(tmp_path).get_run(result.run_id).data.metrics
    for term in ("loss_epoch", "loss_classification", "loss_reconstruction", "loss_sparsity"):
        assert f"train/{term}" in logged, term


def test_a_classical_baseline_trains_and_evaluates_through_the_same_interface(tmp_path, smoke_config):
    cfg = smoke_config(tmp_path, "model=random_forest", "model.estimator.n_estimators=10")
    result = train(cfg)
    assert result.checkpoint.suffix == ".skops"
    assert evaluate(str(result.checkpoint), tracking_uri=cfg.tracking.uri).metrics == result.metrics


def test_settings_errors_are_raised_before_a_run_or_output_exists(tmp_path, smoke_config):
    for override, key in [
        ("trainer.max_epochs=abc", "trainer.max_epochs"),
        ("data.batch_size=0", "data.batch_size"),
        ("model.module.optimizer.lr=-1", "model.module.optimizer"),
        ("data.window=abc", "data.window"),
        ("seed=abc", "seed"),
        ("trainer.accelerator=gpu", "trainer.accelerator"),
        ("paths.output_dir=/etc/hostname/outputs", "paths.output_dir"),
    ]:
        with pytest.raises(TwinIDSError, match=key.replace(".", r"\.")):
            train(smoke_config(tmp_path, override))
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "outputs").exists()


def test_eval_refuses_to_change_how_the_checkpoint_was_trained(lstm_job):
    _, cfg, result = lstm_job
    for override in ("privacy=dp", "privacy.target_epsilon=100", "transfer=finetune"):
        with pytest.raises(TwinIDSError, match=r"eval cannot change (privacy|transfer).*spent no privacy"):
            evaluate(result.run_id, [override], tracking_uri=cfg.tracking.uri)


def test_an_unknown_transfer_source_is_refused_without_creating_a_store(tmp_path, smoke_config):
    cfg = smoke_config(tmp_path, "transfer=finetune", "transfer.source=0123456789abcdef0123456789abcdef")
    with pytest.raises(TwinIDSError, match=r"no tracking store at .* yet"):
        train(cfg)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()


def test_a_transfer_setting_without_transfer_finetune_is_refused_not_ignored(tmp_path, smoke_config):
    with pytest.raises(TwinIDSError, match=r"transfer\.source is set, but transfer=none .* add transfer=finetune"):
        train(smoke_config(tmp_path, "transfer.source=0123456789abcdef0123456789abcdef"))
    assert not (tmp_path / "mlruns").exists()


def test_a_run_reports_how_many_classes_it_predicted_and_tags_a_single_class_collapse(tmp_path, smoke_config):
    from twinids.training.job import SINGLE_CLASS_TAG, prediction_spread

    spread, tags = prediction_spread(np.array([[40, 0], [7, 0]]), ["normal", "attack"])
    assert spread == {"test/predicted_classes": 1.0} and tags == {SINGLE_CLASS_TAG: "normal"}
    spread, tags = prediction_spread(np.array([[40, 1], [7, 3]]), ["normal", "attack"])
    assert spread == {"test/predicted_classes": 2.0} and tags == {}


def test_a_collapsed_detector_carries_the_single_class_tag_on_its_run(tmp_path, smoke_config, mlflow_client):
    # So strong a penalty leaves the logistic regression only its intercept: it answers the majority class.
    result = train(smoke_config(tmp_path, "model=logistic_regression", "model.estimator.C=1e-9"))
    run = mlflow_client(tmp_path).get_run(result.run_id)
    assert result.metrics["test/predicted_classes"] == run.data.metrics["test/predicted_classes"] == 1.0
    assert run.data.tags["twinids.single_class_prediction"] == "normal"
