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
    assert perfect["audit/mia_auc"] == perfect["audit/mia_tpr_at_1pct_fpr"] == 1.0
    blind = attack_metrics(rng.normal(size=20_000), rng.normal(size=20_000))
    assert blind["audit/mia_auc"] == pytest.approx(0.5, abs=0.01)
    assert blind["audit/mia_tpr_at_1pct_fpr"] == pytest.approx(0.01, abs=0.005)
    assert blind["audit/mia_advantage"] < 0.03


@pytest.fixture(scope="module")
def forest_run(tmp_path_factory):
    """A random forest grown to full depth: near-zero loss on its own training windows, so it leaks."""
    from twinids.config import compose

    workdir = tmp_path_factory.mktemp("forest")
    cfg = compose(
        [
            "model=random_forest",
            "data.source.n_steps=900",
            f"tracking.uri=sqlite:///{workdir / 'mlruns' / 'mlflow.db'}",
            f"paths.output_dir={workdir / 'outputs'}",
        ]
    )
    return workdir, train(cfg).run_id


def test_audit_finds_a_leaky_detector_and_adds_its_figures_to_the_run_it_attacked(forest_run, mlflow_client):
    workdir, run_id = forest_run
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    result = audit_membership(run_id, ["windows_per_side=600"], uri)
    assert result.members == result.non_members > 200
    assert result.metrics["audit/mia_auc"] > 0.6  # a full-depth forest is confident on what it grew from
    run = mlflow_client(workdir).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["audit/mia_auc"] == pytest.approx(result.metrics["audit/mia_auc"])
    assert run.data.params["audit.attack"] == "loss_threshold"
    assert run.data.params["audit.members"] == str(result.members)
    again = audit_membership(run_id, ["windows_per_side=600"], uri).metrics  # the same draw: the same figures
    assert again == pytest.approx(result.metrics, abs=1e-3)  # (up to the forest's threaded sums)
    with pytest.raises(TwinIDSError, match=r"already records audit\.seed=0"):
        audit_membership(run_id, ["windows_per_side=600", "seed=3"], uri)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("attack=lira", "attack must be one of"),
        ("windows_per_side=0", "windows_per_side"),
        ("non_member_splits=[]", "non_member_splits"),
        ("shadows=3", "unknown config key 'shadows'"),
    ],
)
def test_bad_audit_settings_are_one_line_before_anything_is_read(override, message):
    with pytest.raises(TwinIDSError, match=message):
        audit_membership("no-such-run", [override], "sqlite:////nonexistent/mlflow.db")


def test_audit_of_a_missing_run_is_one_line_and_a_non_zero_exit(twinids_cli):
    result = twinids_cli("audit", "0123456789abcdef")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "no run '0123456789abcdef'" in result.stderr
