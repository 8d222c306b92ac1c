"""`data.holdout_attacks`: attack types no training or validation window holds, kept in the test split, and the
recall on attack types no training window held (`test/recall_unseen`) reported apart."""

from __future__ import annotations

import numpy as np
import pytest

from twinids.data.prepare import prepare_windows
from twinids.data.registry import default_window_settings
from twinids.errors import TwinIDSError
from twinids.training.job import UNSEEN_ATTACKS_TAG, unseen_attack_recall

from .test_prepare import make_frame, windows_rows


def attack_of_sorted_rows(frame) -> np.ndarray:
    ordered = frame.sort_values(["device", "time"], kind="stable").reset_index(drop=True)
    return np.where(ordered["label"].to_numpy() == 1, ordered["attack"].to_numpy(), "normal")


def test_training_and_validation_hold_no_row_of_a_held_out_type_while_the_test_split_keeps_it():
    frame = make_frame()
    every = prepare_windows(frame, default_window_settings(window=6))
    held = prepare_windows(frame, default_window_settings(window=6, holdout_attacks=("replay",)))
    row_attack = attack_of_sorted_rows(frame)
    for split in ("train", "val"):
        assert "replay" in set(row_attack[windows_rows(every.starts[split], 6)])  # there was something to hold out
        assert "replay" not in set(row_attack[windows_rows(held.starts[split], 6)])
        assert "injection" in set(row_attack[windows_rows(held.starts[split], 6)])  # other attacks stay
    np.testing.assert_array_equal(held.starts["test"], every.starts["test"])
    np.testing.assert_array_equal(held.targets["test"], every.targets["test"])


def test_the_scaler_never_sees_a_held_out_row():
    frame = make_frame()
    shifted = frame.copy()
    shifted.loc[shifted["attack"] == "replay", "reading"] += 1000.0  # change only the held-out type's rows
    settings = default_window_settings(window=5, holdout_attacks=("replay",))
    a, b = prepare_windows(frame, settings), prepare_windows(shifted, settings)
    rows = windows_rows(a.starts["train"], 5)
    np.testing.assert_array_equal(a.rows[rows], b.rows[rows])


def test_unknown_attack_names_and_a_bare_string_are_refused_naming_the_types_there_are():
    with pytest.raises(TwinIDSError, match=r"data.holdout_attacks names \['phishing'\].*\['injection', 'replay'\]"):
        prepare_windows(make_frame(), default_window_settings(window=5, holdout_attacks=("phishing",)))
    from omegaconf import OmegaConf

    from twinids.data.prepare import WindowSettings

    node = OmegaConf.load("configs/data/common/windows.yaml")
    node.holdout_attacks = "replay"
    with pytest.raises(TwinIDSError, match=r"data.holdout_attacks must be a list of names, e.g."):
        WindowSettings.from_config(node)


def test_recall_on_unseen_types_pools_their_per_type_recalls_by_window_count():
    frame = make_frame()
    data = prepare_windows(frame, default_window_settings(window=6, holdout_attacks=("replay",)))
    counts = np.bincount(data.attacks["test"], minlength=len(data.attack_names))
    metrics = {"test/recall_attack/replay": 0.25, "test/recall_attack/injection": 1.0}
    values, tags = unseen_attack_recall(metrics, data)
    assert values == {"test/recall_unseen": 0.25, "test/recall_seen": 1.0}
    assert tags == {UNSEEN_ATTACKS_TAG: "replay"}
    assert counts[data.attack_names.index("replay")] > 0
    seen_everything = prepare_windows(frame, default_window_settings(window=6))
    assert unseen_attack_recall(metrics, seen_everything) == ({}, {})


@pytest.mark.slow
def test_a_detector_trained_without_replay_reports_its_recall_on_replay_apart(smoke_config, tmp_path, mlflow_client):
    from twinids.training.train import train

    result = train(smoke_config(tmp_path, "data.holdout_attacks=[replay]", "model=random_forest"))
    run = mlflow_client(tmp_path).get_run(result.run_id)
    assert run.data.metrics["test/recall_unseen"] == pytest.approx(run.data.metrics["test/recall_attack/replay"])
    assert 0 <= run.data.metrics["test/recall_seen"] <= 1
    assert run.data.tags[UNSEEN_ATTACKS_TAG] == "replay"
    assert run.data.params["data/holdout_attacks"] == "['replay']"
