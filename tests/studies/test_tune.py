"""`twinids tune`: search spaces, trials as child runs, a study that resumes, and pruning inside Lightning."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from twinids.config import compose, group_options
from twinids.errors import TwinIDSError
from twinids.launch.search_space import load_search_space
from twinids.launch.tune import TuneSettings, run_tune

TINY_SPACE = """\
metric: val/f1_macro
direction: maximize
n_trials: 2
overrides: [experiment=smoke, data.source.n_steps=900, seed=1, model.module.net.hidden_size=8]
sampler: {seed: 0}
pruner: {n_startup_trials: 5}
params:
  model.module.optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  model.module.net.dropout: {type: categorical, choices: [0.0, 0.2]}
"""


@pytest.fixture
def user_search(tmp_path, monkeypatch) -> Path:
    """A user config folder holding search/tiny.yaml, on the config search path."""
    folder = tmp_path / "my-configs" / "search"
    folder.mkdir(parents=True)
    (folder / "tiny.yaml").write_text(TINY_SPACE)
    monkeypatch.setenv("TWINIDS_CONFIG_PATH", str(folder.parent))
    return folder


@pytest.mark.parametrize("name", group_options("search"))
def test_every_shipped_search_space_loads_and_names_keys_of_its_config(name):
    space = load_search_space(name)
    cfg = compose(space.overrides)
    for param in space.params:
        assert OmegaConf.select(cfg, param.key, default="absent") != "absent", param.key


def test_an_unknown_search_space_lists_those_there_are():
    with pytest.raises(TwinIDSError, match=r"no search space 'nope'.*search spaces: .*lstm"):
        load_search_space("nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("metrics: val/f1_macro\n", r"odd\.yaml: unknown key 'metrics'; known keys: direction, metric"),
        ("- a\n", "a mapping"),
    ],
)
def test_a_search_space_with_an_unknown_key_or_not_a_mapping_names_the_file(user_search, content, message):
    (user_search / "odd.yaml").write_text(content)
    with pytest.raises(TwinIDSError, match=message):
        load_search_space("odd")


def test_a_bad_parameter_names_the_file_and_the_key(user_search):
    (user_search / "bad.yaml").write_text("params:\n  model.module.optimizer.lr: {type: float, low: 1, high: 0}\n")
    with pytest.raises(
        TwinIDSError, match=r"bad\.yaml: params\.model\.module\.optimizer\.lr: needs numbers low < high"
    ):
        load_search_space("bad")


def test_a_searched_key_missing_from_the_config_is_refused_before_any_trial(user_search, tmp_path):
    (user_search / "typo.yaml").write_text("params:\n  model.module.net.hiden: {type: int, low: 1, high: 4}\n")
    with pytest.raises(TwinIDSError, match=r"params\.model\.module\.net\.hiden is not a key"):
        run_tune(TuneSettings("typo", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("n_trials", [0, -1])
def test_fewer_than_one_trial_is_refused_before_the_study_or_the_store_exists(user_search, tmp_path, n_trials):
    # 0 once meant "the space's 20 trials" and -1 ran nothing and exited 0.
    settings = TuneSettings(
        "tiny", n_trials=n_trials, storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )  # fmt: skip
    with pytest.raises(TwinIDSError, match=rf"--n-trials must be an integer >= 1; got {n_trials}"):
        run_tune(settings)
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("storage", "reason"),
    [
        ("foo://bar", "Can't load plugin: sqlalchemy.dialects:foo"),
        ("not-a-url", "Could not parse SQLAlchemy URL"),
        ("sqlite:////no/such/folder/optuna.db", "unable to open database file"),
    ],
)
def test_an_optuna_storage_that_cannot_be_opened_is_refused_before_the_store_exists(
    user_search, tmp_path, storage, reason
):
    settings = TuneSettings("tiny", storage=storage, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(TwinIDSError, match=rf"cannot open the Optuna storage {storage} \(.*{reason}") as refused:
        run_tune(settings)
    assert "\n" not in str(refused.value) and "--storage" in str(refused.value)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_trials_are_child_runs_of_one_parent_and_a_rerun_only_adds_the_missing_trials(user_search, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    settings = TuneSettings(
        "tiny", [f"paths.output_dir={tmp_path / 'outputs'}"], storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        tracking_uri=uri,
    )  # fmt: skip
    first = run_tune(settings)
    assert [trial.state for trial in first.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(uri)
    parent = client.get_run(first.parent_run_id)
    assert parent.data.tags["twinids.job"] == "tune" and parent.info.status == "FINISHED"
    for trial in first.trials:
        run = client.get_run(trial.run_id)
        assert run.data.tags["mlflow.parentRunId"] == first.parent_run_id and run.info.status == "FINISHED"
        logged = [m.value for m in client.get_metric_history(trial.run_id, "val/f1_macro")]
        assert trial.value == max(logged)
    assert first.best_value == max(trial.value for trial in first.trials)
    compose(first.best_overrides)  # the best configuration, as overrides train accepts

    second = run_tune(TuneSettings(**{**vars(settings), "n_trials": 3}))
    assert len(second.trials) == 1 and second.parent_run_id == first.parent_run_id
    study = optuna.load_study(study_name=first.study_name, storage=settings.storage)
    assert len(study.trials) == 3

    changed = {**vars(settings), "overrides": [*settings.overrides, "seed=3"], "study_name": first.study_name}
    with pytest.raises(TwinIDSError, match="made from another search space or other overrides"):
        run_tune(TuneSettings(**changed))


def test_a_pruned_trial_stops_training_and_its_run_still_ends_finished(tmp_path, smoke_config):
    from twinids.launch.pruning import TrialPruning
    from twinids.training.train import train

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    pruning = TrialPruning(study.ask(), "val/f1_macro")  # any macro-F1 is below 2: pruned after the first epoch
    cfg = smoke_config(tmp_path, "seed=1", "trainer.max_epochs=5", "callbacks.early_stopping.patience=10")
    result = train(cfg, extra_callbacks=[pruning])
    assert pruning.pruned_at_epoch == 0
    assert result.timings["epochs"] == 1
    assert MlflowClient(cfg.tracking.uri).get_run(result.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_the_tune_command_prints_each_trial_and_the_best_configuration_as_a_train_command(user_search, twinids_cli):
    done = twinids_cli("tune", "tiny", "--n-trials", "1", "--no-prune")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("trial   0  COMPLETE  ") and "model.module.optimizer.lr=" in lines[0]
    assert lines[1].startswith("study tiny-") and "mlruns/optuna.db" in lines[1]
    assert lines[2].startswith("best val/f1_macro = ")
    assert lines[3].startswith("twinids train experiment=smoke ") and "model.module.net.dropout=" in lines[3]
