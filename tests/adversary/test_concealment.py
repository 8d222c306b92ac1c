"""Concealment attacks on BATADAL (issue 15 §2): what the attacker may change, and that the attack works.

The detectors are trained once per module on the real BATADAL files (a smoke-sized autoencoder, and the no-net
Mahalanobis detector of experiments/results/learned_twins.md, which trains nothing).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from twinids.adversary.attack_job import check_within_threat, conceal_run, finished_attack
from twinids.adversary.concealment import IterativeConcealment, LearnedConcealment, ReplayConcealment
from twinids.adversary.threat import ConcealmentSettings, threat_model
from twinids.errors import TwinIDSError
from twinids.scoring.normalize import smooth_differentiable
from twinids.training.train import train


def settings(**changes) -> ConcealmentSettings:
    """The shipped attack-independent settings (configs/concealment.yaml), changed as given."""
    from twinids.adversary.attack_job import attack_settings

    return dataclasses.replace(attack_settings([])[1], **changes)


def shipped_replay() -> ReplayConcealment:
    """Replay with its shipped settings (configs/method/replay.yaml)."""
    from twinids.adversary.attack_job import attack_settings

    return ReplayConcealment(phase_tolerance=attack_settings(["method=replay"])[0].method.phase_tolerance)


@pytest.fixture(scope="module")
def detectors(tmp_path_factory, shared_datasets):
    """Runs of the no-net Mahalanobis detector and a smoke autoencoder on BATADAL, in one store."""
    from twinids.config import compose

    workdir = tmp_path_factory.mktemp("concealment")
    where = [
        f"data.root={shared_datasets}",
        f"tracking.uri=sqlite:///{workdir / 'mlruns' / 'mlflow.db'}",
        f"paths.output_dir={workdir / 'outputs'}",
    ]
    runs = {}
    for name, overrides in {
        "mahalanobis": ["experiment=batadal_no_twin"],
        "autoencoder": ["experiment=batadal_autoencoder", "trainer.max_epochs=2", "trainer.limit_train_batches=10"],
    }.items():
        runs[name] = train(compose([*overrides, *where]), [*overrides, *where]).run_id
    return workdir, runs, f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def mahalanobis(detectors, shared_datasets):
    """The no-net detector loaded, with its BATADAL windows."""
    from omegaconf import OmegaConf

    from twinids.data.registry import build_windows
    from twinids.tracking.queries import download_checkpoint
    from twinids.training.checkpoint_io import read_card
    from twinids.training.detector import make_detector

    workdir, runs, uri = detectors
    checkpoint = download_checkpoint(runs["mahalanobis"], workdir / "checkpoint", uri)
    cfg = OmegaConf.create(read_card(checkpoint).config)
    data = build_windows(cfg.data)
    detector = make_detector(cfg, data, training=False)
    detector.load(checkpoint)
    return data, detector


def alarmed_attack_windows(data, detector, rows) -> tuple[float, np.ndarray]:
    """Share of attack windows above the threshold, and every test window's smoothed score, on `rows`."""
    alarm = detector.alarm_score()
    windows = torch.from_numpy(rows[data.starts["test"][:, None] + np.arange(data.window)])
    with torch.no_grad():
        smoothed = smooth_differentiable(alarm.score(windows), data.groups["test"], alarm.smooth).numpy()
    attacked = data.targets["test"] != 0
    return float((smoothed[attacked] > alarm.threshold).mean()), smoothed


def test_the_white_box_attack_lowers_the_scores_it_was_made_against_until_the_attacks_hide(mahalanobis):
    data, detector = mahalanobis
    threat = threat_model(data, settings(sensors="all"))
    concealed = IterativeConcealment(steps=100, lr=0.05, margin=0.05).conceal(data, threat, settings(), detector, "m")
    before, clean_scores = alarmed_attack_windows(data, detector, data.rows)
    after, concealed_scores = alarmed_attack_windows(data, detector, concealed)
    assert before > 0.8  # the detector finds the attacks in the untouched data ...
    assert after < 0.1  # ... and the attacker who controls every channel hides nearly all of them
    attacked = data.targets["test"] != 0
    assert concealed_scores[attacked].mean() < 0.5 * clean_scores[attacked].mean()


def test_an_attacker_with_fewer_channels_hides_less(mahalanobis):
    data, detector = mahalanobis
    method = IterativeConcealment(steps=50, lr=0.05, margin=0.05)
    hidden = {}
    for sensors in (2, "all"):
        threat = threat_model(data, settings(sensors=sensors, seed=1))
        concealed = method.conceal(data, threat, settings(), detector, "m")
        hidden[sensors] = alarmed_attack_windows(data, detector, concealed)[0]
    assert hidden["all"] < hidden[2]


@pytest.mark.parametrize("method", ["replay", "iterative", "learned"])
def test_every_method_writes_only_attacked_readings_of_unprotected_controlled_channels_within_their_ranges(
    mahalanobis, method
):
    data, detector = mahalanobis
    names = data.feature_names
    drawn = threat_model(data, settings(sensors=6, seed=3))
    protected = names[int(drawn.controlled[0])]
    threat = threat_model(data, settings(sensors=6, seed=3, protected=(protected,)))
    assert names.index(protected) not in threat.controlled and len(threat.controlled) == 5
    attack = {
        "replay": shipped_replay(),
        "iterative": IterativeConcealment(steps=20, lr=0.05, margin=0.05),
        "learned": LearnedConcealment(hidden=[16], max_iter=20),
    }[method]
    concealed = attack.conceal(data, threat, settings(seed=3), detector, "m")

    changed = concealed != data.rows
    assert changed.any()
    assert not changed[~threat.editable(*data.rows.shape)].any()  # no other row or channel moves
    assert (concealed[:, names.index(protected)] == data.rows[:, names.index(protected)]).all()
    test_rows = np.unique(data.starts["test"][:, None] + np.arange(data.window))
    assert set(np.flatnonzero(changed.any(axis=1))) <= set(test_rows[data.row_attacks[test_rows] != 0])
    written = concealed[np.ix_(threat.rows, threat.controlled)]
    lower, upper = threat.bounds()
    assert (written >= lower).all() and (written <= upper).all()
    for column, channel in enumerate(threat.controlled):
        if int(channel) in threat.levels:  # a pump status stays one of the values it takes in training
            assert np.isin(written[:, column], threat.levels[int(channel)]).all()
    assert check_within_threat(data.rows, concealed, threat).sum() == changed.sum()


def test_replay_plays_back_recorded_normal_training_readings_of_the_same_hour(mahalanobis):
    data, detector = mahalanobis
    threat = threat_model(data, settings(sensors=4, seed=0))
    concealed = shipped_replay().conceal(data, threat, settings(), detector, "m")
    times, normal = data.row_times, threat.normal_rows
    for episode in threat.episodes():
        written = concealed[np.ix_(episode, threat.controlled)]
        recorded = data.rows[normal][:, threat.controlled]
        matches = [row for row in normal if np.array_equal(data.rows[row, threat.controlled], written[0])]
        assert matches, "the first replayed reading is a recorded normal training reading"
        assert any(np.isclose((times[row] - times[episode[0]]) % 86400, 0) for row in matches)
        assert all(np.isin(written[:, 0], recorded[:, 0]))


def test_the_job_refuses_an_attack_that_wrote_outside_the_threat(mahalanobis):
    data, _ = mahalanobis
    threat = threat_model(data, settings(sensors=3, seed=0))
    outside = data.rows.copy()
    normal_row = int(threat.normal_rows[0])
    outside[normal_row, threat.controlled[0]] += 1.0  # a training reading
    with pytest.raises(TwinIDSError, match="outside the attacked rows"):
        check_within_threat(data.rows, outside, threat)
    beyond = data.rows.copy()
    beyond[threat.rows[0], threat.controlled[0]] = threat.upper[0, threat.controlled[0]] + 5.0
    with pytest.raises(TwinIDSError, match="observed ranges"):
        check_within_threat(data.rows, beyond, threat)


def test_an_attack_run_is_linked_to_the_detector_and_found_again_by_its_settings(detectors, mlflow_client):
    workdir, runs, uri = detectors
    overrides = ["method=iterative", "sensors=all", "method.steps=20"]
    result = conceal_run(runs["autoencoder"], overrides, uri)
    run = mlflow_client(workdir).get_run(result.run_id)
    assert run.data.tags["twinids.source_run_id"] == runs["autoencoder"]
    assert run.data.tags["twinids.job"] == "attack"
    assert run.data.params["attack/method"] == "iterative" and run.data.params["attack/sensors"] == "all"
    assert run.data.params["model/name"] == "lstm_autoencoder"  # the detector's config, for tables
    metrics = run.data.metrics
    assert metrics["test/recall_attacked"] <= metrics["clean/recall_attacked"]
    assert {"test/f1_macro", "clean/f1_macro", "attack/seconds", "attack/readings_changed"} <= set(metrics)
    assert finished_attack(runs["autoencoder"], overrides, uri) == result.run_id
    assert finished_attack(runs["autoencoder"], [*overrides[:2], "method.steps=21"], uri) is None


def test_the_learned_attacker_needs_no_gradient_and_attacks_a_random_forest(tmp_path, shared_datasets):
    from twinids.config import compose

    overrides = [
        "data=batadal",
        "model=random_forest",
        "model.estimator.n_estimators=10",
        f"data.root={shared_datasets}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"paths.output_dir={tmp_path / 'outputs'}",
    ]
    run_id = train(compose(overrides), overrides).run_id
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(TwinIDSError, match="no differentiable alarm"):
        conceal_run(run_id, ["method=iterative"], uri)
    result = conceal_run(run_id, ["method=learned", "sensors=all", "method.max_iter=20"], uri)
    assert result.metrics["test/recall_attacked"] <= result.metrics["clean/recall_attacked"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--method", "gradient"], "--method must be one of"),
        (["--sensors", "99"], "sensors=99, but this data has"),
        (["--sensors", "ten"], "sensors must be an integer >= 1 or all; got 'ten'"),
        (["controlled=[L_T1,NOPE]"], "controlled names ['NOPE']"),
        (["method.steps=0"], "method.steps"),
        (["plc=PLC10"], "plc=PLC10 is not a PLC of data 'batadal'; its PLCs: PLC1, PLC2"),
        (["plc=PLC3", "controlled=[L_T1]"], "give it or controlled=[...], not both"),
    ],
)
def test_bad_attack_settings_are_one_line_and_log_no_run(detectors, cli_runner_factory, arguments, message):
    workdir, runs, _ = detectors
    result = cli_runner_factory(workdir)("attack", runs["mahalanobis"], *arguments)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_the_command_prints_detection_before_and_after(detectors, cli_runner_factory, mlflow_client):
    workdir, runs, _ = detectors
    result = cli_runner_factory(workdir)("attack", runs["mahalanobis"], "--method", "replay", "--sensors", "5")
    assert result.returncode == 0, result.stderr
    assert "test/recall_attacked" in result.stdout and "clean/recall_attacked" in result.stdout
    assert "controlled:" in result.stdout


def test_an_attacker_who_took_over_one_plc_controls_the_readings_that_plc_reports(detectors, mlflow_client):
    from twinids.config import compose

    workdir, runs, uri = detectors
    result = conceal_run(runs["mahalanobis"], ["method=replay", "plc=PLC3"], uri)
    plc3 = compose(["data=batadal"]).data.plcs.PLC3
    assert result.controlled and set(result.controlled) <= set(plc3)  # those the detector reads (constants dropped)
    assert mlflow_client(workdir).get_run(result.run_id).data.params["attack/plc"] == "PLC3"


def test_an_unset_attack_setting_hashes_as_absent_so_settings_added_later_keep_earlier_keys():
    from omegaconf import OmegaConf, open_dict

    from twinids.adversary.attack_job import attack_key, attack_settings

    cfg = attack_settings(["method=replay"])[0]
    added_later = cfg.copy()
    with open_dict(added_later):
        added_later.some_new_setting = None
    assert attack_key("run", added_later) == attack_key("run", cfg)
    assert attack_key("run", OmegaConf.merge(cfg, {"plc": "PLC3"})) != attack_key("run", cfg)
    assert attack_key("other run", cfg) != attack_key("run", cfg)
