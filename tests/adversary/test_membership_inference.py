"""Membership inference (`twinids audit`): who is a member, how the attack is scored, and where results go."""

from __future__ import annotations

import numpy as np
import pytest

from twinids.adversary.audit import audit_membership
from twinids.adversary.membership import attack_metrics, membership_sample
from twinids.data.registry import build_windows
from twinids.errors import TwinIDSError
from twinids.training.train import train


@pytest.fixture(scope="module")
def simulator_windows():
    from twinids.config import compose

    return build_windows(compose(["data.source.n_steps=900"]).data)


def test_members_are_training_windows_and_non_members_held_out_ones_matched_class_by_class(simulator_windows):
    data = simulator_windows
    sample = membership_sample(data, ["val", "test"], per_side=400, rng=np.random.default_rng(1))
    members, non_members = sample.sizes
    assert members == non_members <= 400 and members > 100
    assert set(sample.non_members) == {"val", "test"}
    member_classes = np.bincount(data.targets["train"][sample.members], minlength=len(data.class_names))
    held_out_classes = sum(
        np.bincount(data.targets[s][i], minlength=len(data.class_names)) for s, i in sample.non_members.items()
    )
    assert list(member_classes) == list(held_out_classes)
    member_readings = (data.starts["train"][sample.members, None] + np.arange(data.window)).ravel()
    for split, chosen in sample.non_members.items():
        readings = (data.starts[split][chosen, None] + np.arange(data.window)).ravel()
        assert not np.intersect1d(member_readings, readings).size  # no non-member shares a reading with a member


def test_held_out_windows_that_share_readings_with_training_windows_are_refused(simulator_windows):
    import dataclasses

    leaky = dataclasses.replace(simulator_windows, starts={**simulator_windows.starts})
    leaky.starts["val"] = leaky.starts["val"].copy()
    leaky.starts["val"][0] = leaky.starts["train"][-1] + 1  # overlaps the last training window by 19 readings
    with pytest.raises(TwinIDSError, match="readings are in both training and 'val' windows"):
        membership_sample(leaky, ["val"], per_side=10, rng=np.random.default_rng(0))


def test_training_windows_cannot_be_non_members(simulator_windows):
    with pytest.raises(TwinIDSError, match="'train' is not a held-out split"):
        membership_sample(simulator_windows, ["train"], per_side=10, rng=np.random.default_rng(0))


def test_attack_metrics_are_one_for_a_perfect_attack_and_chance_for_a_blind_one():
    rng = np.random.default_rng(0)
    perfect = attack_metrics(rng.uniform(1, 2, 500), rng.uniform(0, 1, 500))
    assert perfect["mia_auc"] == perfect["mia_tpr_at_1pct_fpr"] == 1.0
    blind = attack_metrics(rng.normal(size=20_000), rng.normal(size=20_000))
    assert blind["mia_auc"] == pytest.approx(0.5, abs=0.01)
    assert blind["mia_tpr_at_1pct_fpr"] == pytest.approx(0.01, abs=0.005)
    assert blind["mia_advantage"] < 0.03


@pytest.fixture(scope="module")
def forest_run(tmp_path_factory):
    """A random forest grown to full depth: near-zero loss on its own training windows, so it leaks."""
    from twinids.config import compose

    workdir = tmp_path_factory.mktemp("forest")
    overrides = [
        "model=random_forest",
        "data.source.n_steps=900",
        f"tracking.uri=sqlite:///{workdir / 'mlruns' / 'mlflow.db'}",
        f"paths.output_dir={workdir / 'outputs'}",
    ]
    cfg = compose(overrides)
    return workdir, train(cfg, overrides).run_id


def test_audit_finds_a_leaky_detector_and_adds_its_figures_to_the_run_it_attacked(forest_run, mlflow_client):
    workdir, run_id = forest_run
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    result = audit_membership(run_id, ["windows_per_side=600"], uri)
    assert result.members == result.non_members > 200
    auc = result.metrics["audit/loss_threshold/mia_auc"]
    assert auc > 0.6  # a full-depth forest is confident on what it grew from
    run = mlflow_client(workdir).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["audit/loss_threshold/mia_auc"] == pytest.approx(auc)
    assert run.data.params["audit.loss_threshold.members"] == str(result.members)
    again = audit_membership(run_id, ["windows_per_side=600"], uri).metrics  # the same draw: the same figures
    assert again == pytest.approx(result.metrics, abs=1e-3)  # (up to the forest's threaded sums)
    with pytest.raises(TwinIDSError, match=r"already records audit\.loss_threshold\.seed=0"):
        audit_membership(run_id, ["windows_per_side=600", "seed=3"], uri)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("attack=guess", "attack must be one of"),
        ("shadows=1", "shadows must be an integer >= 2"),
        ("windows_per_side=0", "windows_per_side"),
        ("non_member_splits=[]", "non_member_splits"),
        ("shadow=3", "unknown config key 'shadow'"),
    ],
)
def test_bad_audit_settings_are_one_line_before_anything_is_read(override, message):
    with pytest.raises(TwinIDSError, match=message):
        audit_membership("no-such-run", [override], "sqlite:////nonexistent/mlflow.db")


def test_audit_of_a_missing_run_is_one_line_and_a_non_zero_exit(twinids_cli):
    result = twinids_cli("audit", "0123456789abcdef")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "no run '0123456789abcdef'" in result.stderr


def test_lira_trains_shadows_on_halves_as_a_sweep_and_scores_the_run_it_attacked(forest_run, mlflow_client):
    from twinids.launch.shadows import AUDIT_TARGET_TAG, audit

    workdir, run_id = forest_run
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    lira = ["attack=lira", "shadows=4", "windows_per_side=600"]
    result = audit(run_id, lira, uri)
    assert result.metrics["audit/lira/mia_auc"] > 0.6
    assert 100 < result.members <= 600 and 100 < result.non_members <= 600  # windows no shadow left out are unscored
    client = mlflow_client(workdir)
    parent = client.search_runs(["1"], f"tags.`{AUDIT_TARGET_TAG}` = '{run_id}'")
    assert len(parent) == 1
    shadows = client.search_runs(["1"], f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'")
    assert sorted(s.data.params["data/train_half"] for s in shadows) == ["0", "1", "2", "3"]
    trained = client.get_run(run_id).data.metrics["data/train_windows"]
    for shadow in shadows:  # about half the training windows (those across a block edge are dropped too)
        assert 0.3 * trained < shadow.data.metrics["data/train_windows"] < 0.55 * trained
    assert client.get_run(run_id).data.params["audit.lira.shadows"] == "4"
    again = audit(run_id, lira, uri)  # the shadows are reused, as a sweep reuses finished jobs
    assert again.metrics == pytest.approx(result.metrics, abs=1e-3)
    assert len(client.search_runs(["1"], "params.`data/train_half` != 'None'")) == 4


def test_lira_refuses_a_run_its_overrides_cannot_train_again(tmp_path, shipped_config):
    from twinids.launch.shadows import audit

    cfg = shipped_config(
        "experiment=smoke",
        "data.source.n_steps=900",
        "model=random_forest",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"paths.output_dir={tmp_path}",
    )
    run_id = train(cfg).run_id  # through the Python API, without its overrides
    with pytest.raises(TwinIDSError, match="cannot be trained again from its overrides"):
        audit(run_id, ["attack=lira", "shadows=2"], f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_retraining_drift_ignores_where_runs_go_and_keys_gained_since_that_are_off():
    from omegaconf import OmegaConf

    from twinids.launch.shadows import retraining_drift

    trained = {"data": {"window": 20}, "tracking": {"uri": "sqlite:///a.db"}, "seed": 1}
    same = OmegaConf.create({"data": {"window": 20, "train_half": None}, "tracking": {"uri": "x"}, "seed": 1})
    assert retraining_drift(trained, same) == []
    gained_on = OmegaConf.create({"data": {"window": 20}, "callbacks": {"select": "last"}, "seed": 1})
    assert retraining_drift(trained, gained_on) == ["callbacks.select"]
    changed = OmegaConf.create({"data": {"window": 10}, "seed": 1})
    assert retraining_drift(trained, changed) == ["data.window"]
    # nodes gained since that are switched off (an audit without canaries, no weight averaging) train nothing
    gained_off = OmegaConf.create(
        {
            "data": {"window": 20},
            "seed": 1,
            "privacy": {"audit": {"canaries": 0, "kind": "white_box", "score": "likelihood_ratio"}},
            "callbacks": {"weight_averaging": {"_target_": "pytorch_lightning.callbacks.EMAWeightAveraging"}},
        }
    )
    assert retraining_drift(trained, gained_off) == []
    gained_canaries = OmegaConf.create({"data": {"window": 20}, "seed": 1, "privacy": {"audit": {"canaries": 5}}})
    assert retraining_drift(trained, gained_canaries) == ["privacy.audit.canaries"]


def test_lira_without_its_shadows_is_refused(forest_run):
    workdir, run_id = forest_run
    with pytest.raises(TwinIDSError, match="attack=lira reads 4 shadow models and got 0"):
        audit_membership(run_id, ["attack=lira", "shadows=4"], f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
