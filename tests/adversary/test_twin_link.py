"""Concealment on the simulator (issue 15 §2): the attacker writes what a packet carries, and the virtual twin's
columns follow what it wrote, recomputed by the simulator's own twin (twinids/twin/link.py).

One physics-residual run (it trains nothing) on the shipped simulator serves the module.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twinids.adversary.attack_job import _link, check_within_threat, conceal_run, followed
from twinids.adversary.concealment import IterativeConcealment, LearnedConcealment
from twinids.adversary.threat import ConcealmentSettings, threat_model
from twinids.errors import TwinIDSError
from twinids.training.train import train
from twinids.twin.attacks import Packet
from twinids.twin.network import PACKET, TWIN_COMPUTED, simulate_devices
from twinids.twin.virtual_twin import VirtualTwin


def settings(**changes) -> ConcealmentSettings:
    """The shipped attack-independent settings (configs/concealment.yaml), changed as given."""
    from twinids.adversary.attack_job import attack_settings

    return dataclasses.replace(attack_settings([])[1], **changes)


def shipped(method: str, **changes):
    """A concealment method built from its shipped config (configs/method/<method>.yaml), changed as given."""
    from omegaconf import open_dict

    from twinids.adversary.attack_job import attack_settings
    from twinids.config import build

    node = attack_settings([f"method={method}"])[0].method
    with open_dict(node):
        node.pop("name")
        node.update(changes)
    return build(node, method)


@pytest.fixture(scope="module")
def physics(tmp_path_factory):
    """A physics-residual run on the shipped simulator (seed 1): its store, run id, config, data and detector."""
    from omegaconf import OmegaConf

    from twinids.config import compose
    from twinids.data.registry import build_windows
    from twinids.tracking.queries import download_checkpoint
    from twinids.training.checkpoint_io import read_card
    from twinids.training.detector import make_detector

    workdir = tmp_path_factory.mktemp("twin_link")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    overrides = [
        "task=score",
        "model=physics_residual",
        "seed=1",
        f"tracking.uri={uri}",
        f"paths.output_dir={workdir / 'outputs'}",
    ]
    run_id = train(compose(overrides), overrides).run_id
    checkpoint = download_checkpoint(run_id, workdir / "checkpoint", uri)
    cfg = OmegaConf.create(read_card(checkpoint).config)
    data = build_windows(cfg.data)
    detector = make_detector(cfg, data, training=False)
    detector.load(checkpoint)
    return uri, run_id, cfg, data, detector


@pytest.fixture(scope="module")
def link(physics):
    _, _, cfg, data, _ = physics
    return _link(cfg.data, data)


def column(data, name: str) -> int:
    return data.feature_names.index(name)


def raw(data, rows: np.ndarray, name: str) -> np.ndarray:
    """A column of encoded rows in the frame's units."""
    offset, scale = data.decoding
    channel = column(data, name)
    return offset[channel] + scale[channel] * rows[:, channel].astype(np.float64)


def test_the_twin_run_again_over_untouched_readings_gives_the_recorded_columns_bit_for_bit(physics, link):
    _, _, _, data, _ = physics
    assert [data.feature_names[c] for c in link.channels] == list(PACKET)
    assert [data.feature_names[c] for c in link.derived] == list(TWIN_COMPUTED)
    assert np.array_equal(link.recompute(data.rows), data.rows)


def test_rewritten_readings_move_the_twin_as_a_plain_twin_loop_over_them_would(physics, link):
    _, _, cfg, data, _ = physics
    threat = threat_model(data, settings(), link)
    device = data.row_devices[threat.rows[0]]
    attacked = threat.rows[data.row_devices[threat.rows] == device][:30]
    rewritten = data.rows.copy()
    rewritten[attacked, column(data, "sensor_primary")] = threat.bounds(attacked)[0][:, 0]  # the device's lowest
    recomputed = link.recompute(rewritten)

    # the plain loop: the simulator's own twin inputs, every delivered packet decoded from the rewritten rows
    source = {key: value for key, value in cfg.data.source.items() if key != "_target_"}
    _, model, stream = simulate_devices(**source)[device]
    inputs = stream.twin_inputs
    mine = np.flatnonzero(data.row_devices == device)
    packets = np.column_stack([raw(data, rewritten[mine], name) for name in PACKET])
    untouched = ~np.isin(mine, attacked)
    packets[untouched] = np.column_stack([stream.rows[name] for name in PACKET])[untouched]  # exact, not decoded
    twin = VirtualTwin(
        model,
        inputs.initial_state,
        inputs.commands[0],
        inputs.exogenous[0],
        cfg.data.source.twin_gain,
        cfg.data.source.twin_gate,
    )
    expected, row = [], 0
    for t, delivered in enumerate(inputs.delivered):
        if delivered:
            expected.append(twin.primary)
            twin.observe(Packet(*packets[row]), inputs.commands[t])
            row += 1
        twin.advance(inputs.commands[t + 1], inputs.exogenous[t])
    twin_primary = raw(data, recomputed[mine], "twin_primary")
    assert np.allclose(twin_primary, expected, rtol=0, atol=1e-4 * data.decoding[1][column(data, "twin_primary")])
    residual = raw(data, recomputed[mine], "residual_primary")
    assert np.allclose(
        residual, packets[:, 0] - np.asarray(expected), atol=1e-4 * raw(data, data.rows, "residual_primary").std()
    )

    before = mine[mine < attacked[0]]  # the twin only looks back: nothing before the first rewrite moves
    assert np.array_equal(recomputed[before], data.rows[before])
    others = data.row_devices != device
    assert np.array_equal(recomputed[others], data.rows[others])
    changed_columns = np.flatnonzero((recomputed != rewritten).any(axis=0))
    assert set(changed_columns) <= set(link.derived) and column(data, "residual_primary") in changed_columns


def test_the_attacker_controls_only_what_a_packet_carries(physics, link):
    _, _, _, data, _ = physics
    threat = threat_model(data, settings(sensors="all"), link)
    assert [data.feature_names[c] for c in threat.controlled] == list(PACKET)
    assert list(threat.derived) == list(link.derived)
    with pytest.raises(TwinIDSError, match="writes 3 channels"):
        threat_model(data, settings(sensors=4), link)
    with pytest.raises(TwinIDSError, match=r"controlled names \['setpoint'\], which are not channels an attacker"):
        threat_model(data, settings(controlled=("setpoint",)), link)
    with pytest.raises(TwinIDSError, match=r"names no data\.link"):
        threat_model(data, settings(), None)


def test_written_readings_stay_in_the_range_of_their_own_devices_sensor(physics, link):
    _, _, _, data, _ = physics
    threat = threat_model(data, settings(), link)
    lower, upper = threat.bounds()
    for device in np.unique(data.row_devices[threat.rows]):
        own = threat.normal_rows[data.row_devices[threat.normal_rows] == device]
        at = data.row_devices[threat.rows] == device
        assert np.array_equal(lower[at][0], data.rows[own][:, threat.controlled].min(axis=0))
        assert np.array_equal(upper[at][0], data.rows[own][:, threat.controlled].max(axis=0))


@pytest.mark.parametrize("method", ["replay", "iterative", "learned"])
def test_every_method_writes_packets_only_and_the_twin_columns_follow(physics, link, method):
    _, _, _, data, detector = physics
    threat = threat_model(data, settings(), link)
    attack = {
        "replay": shipped("replay"),
        "iterative": IterativeConcealment(steps=30, lr=0.05, margin=0.05),
        "learned": LearnedConcealment(hidden=[16], max_iter=20),
    }[method]
    written = attack.conceal(data, threat, settings(), detector, "physics_residual")
    changed = check_within_threat(data.rows, written, threat)
    assert changed.any() and not (written[:, threat.derived] != data.rows[:, threat.derived]).any()
    concealed = followed(written, threat)
    moved = concealed != written
    assert set(np.flatnonzero(moved.any(axis=0))) <= set(threat.derived)
    assert not moved[~link.downstream(threat.rows)].any()


def test_replay_plays_back_the_same_devices_recordings_across_an_attacks_gaps(physics, link):
    _, _, cfg, data, detector = physics
    threat = threat_model(data, settings(), link)
    concealed = shipped("replay").conceal(data, threat, settings(), detector, "physics_residual")
    step = cfg.data.source.step_seconds
    gaps = [episode for episode in threat.episodes() if (np.diff(data.row_times[episode]) > step).any()]
    assert gaps, "a denial-of-service episode drops packets: its rows are unevenly spaced"
    for episode in threat.episodes():
        first = concealed[episode[0], threat.controlled]
        sources = [row for row in threat.normal_rows if np.array_equal(data.rows[row, threat.controlled], first)]
        assert any(data.row_devices[row] == data.row_devices[episode[0]] for row in sources)


def test_the_learned_attacker_never_reads_the_twins_columns(physics, link):
    _, _, _, data, detector = physics
    threat = threat_model(data, settings(), link)
    attack = LearnedConcealment(hidden=[16], max_iter=20)
    moved_twin = data.rows.copy()
    moved_twin[:, threat.derived] += 1.0
    first = attack.conceal(data, threat, settings(), detector, "physics_residual")
    second = attack.conceal(
        dataclasses.replace(data, rows=moved_twin), threat, settings(), detector, "physics_residual"
    )
    assert np.array_equal(first[:, threat.controlled], second[:, threat.controlled])


def test_the_white_box_attack_hides_attacks_from_the_physics_twin(physics):
    uri, run_id, _, _, _ = physics
    result = conceal_run(run_id, ["method=iterative", "sensors=all"], uri)
    metrics = result.metrics
    assert result.controlled == list(PACKET)
    assert metrics["test/recall_attacked"] < 0.5 * metrics["clean/recall_attacked"]
    one = conceal_run(run_id, ["method=iterative", "sensors=1"], uri).metrics
    assert one["test/recall_attacked"] > metrics["test/recall_attacked"]


def test_a_run_from_before_data_link_takes_its_datasets_shipped_link(physics):
    from omegaconf import OmegaConf, open_dict

    _, _, cfg, data, _ = physics
    old = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    with open_dict(old):
        del old["link"]
    assert list(_link(old, data).channels) == list(_link(cfg.data, data).channels)


def test_the_link_refuses_data_the_simulators_settings_do_not_give(physics):
    from omegaconf import OmegaConf

    from twinids.twin.link import SimulatedLink

    _, _, cfg, data, _ = physics
    other_seed = OmegaConf.to_container(cfg.data.source, resolve=True) | {"seed": 2}
    with pytest.raises(TwinIDSError, match="simulator's settings"):
        SimulatedLink(other_seed, data, list(PACKET))


def test_the_link_is_left_out_of_the_config_hash_as_training_never_reads_it(physics):
    from omegaconf import open_dict

    from twinids.tracking.config_hash import config_hash

    _, _, cfg, _, _ = physics
    without = cfg.copy()
    with open_dict(without):
        del without.data["link"]
    assert config_hash(without) == config_hash(cfg)
