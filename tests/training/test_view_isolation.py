"""A view cannot read outside itself (issue 17 §4): a detector trained on the operator's view takes that view's
features only, scores the same whatever the other columns hold, is refused another view, and is handed nothing
else by `twinids detect`."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from twinids.data.prepare import WindowSettings, prepare_windows
from twinids.data.registry import load_frame
from twinids.errors import TwinIDSError
from twinids.stream.detect_job import load_online_detector, run_stream
from twinids.stream.online import BadReading
from twinids.stream.sources import batches
from twinids.training.checkpoint_io import load_torch_checkpoint, read_card
from twinids.training.detector import make_detector
from twinids.training.evaluate import evaluate
from twinids.training.train import train

ROLE = "operator"


@pytest.fixture(scope="module")
def operator_run(tmp_path_factory, smoke_config):
    """One smoke LSTM trained on the operator's view: (workdir, its config, its result)."""
    workdir = tmp_path_factory.mktemp("view")
    cfg = smoke_config(workdir, f"data.view={ROLE}")
    return workdir, cfg, train(cfg, [f"data.view={ROLE}"])


@pytest.fixture(scope="module")
def outside(operator_run):
    """The simulator's feature columns outside the operator's view."""
    _, cfg, _ = operator_run
    frame = load_frame(cfg.data)
    return [c for c in frame.columns if c not in ("device", "time", "label", "attack", *cfg.data.views[ROLE])]


def test_the_detector_takes_the_views_features_only(operator_run):
    _, cfg, result = operator_run
    card = read_card(result.checkpoint)
    assert card.config["data"]["view"] == ROLE  # the checkpoint records its view
    view = list(cfg.data.views[ROLE])
    assert all(name in view or name.startswith("device_kind_") for name in card.feature_names)  # one-hot kinds
    assert "sensor_secondary" not in card.feature_names and "dt" not in card.feature_names
    weights = load_torch_checkpoint(result.checkpoint)["state_dict"]
    (input_weights,) = [value for key, value in weights.items() if key.endswith("lstm.weight_ih_l0")]
    assert input_weights.shape[1] == len(card.feature_names)  # the net's input size is the view's


def test_changing_every_column_outside_the_view_leaves_its_scores_bit_identical(operator_run, outside):
    _, cfg, result = operator_run
    frame = load_frame(cfg.data)
    scrambled = frame.copy()
    rng = np.random.default_rng(0)
    for column in outside:
        scrambled[column] = rng.normal(1e3, 1e2, len(frame))
    settings = WindowSettings.from_config(cfg.data)
    clean, changed = prepare_windows(frame, settings), prepare_windows(scrambled, settings)

    detector = make_detector(OmegaConf.create(read_card(result.checkpoint).config), clean, training=False)
    detector.load(result.checkpoint)
    rule = detector.window_rule()
    clean_scores, _ = rule.score(clean.windows("test"))
    changed_scores, _ = rule.score(changed.windows("test"))
    assert np.array_equal(clean_scores, changed_scores)

    every = WindowSettings.from_config(OmegaConf.merge(cfg.data, {"view": None}))  # the control: all features see it
    assert not np.array_equal(prepare_windows(frame, every).rows, prepare_windows(scrambled, every).rows)


@pytest.mark.parametrize("other", ["security", "null", "[sensor_primary]"])
def test_evaluating_it_on_another_view_is_refused_naming_both(operator_run, other):
    _, _, result = operator_run
    with pytest.raises(TwinIDSError, match=rf"was trained on view {ROLE} and cannot read view "):
        evaluate(str(result.checkpoint), [f"data.view={other}"])


def test_fine_tuning_it_on_another_view_of_the_same_data_is_refused(operator_run, smoke_config):
    workdir, _, result = operator_run
    overrides = ["transfer=finetune", f"transfer.source={result.checkpoint}", "data.view=security"]
    with pytest.raises(TwinIDSError, match=rf"transfer\.source run \w+ was trained on view {ROLE} and cannot read"):
        train(smoke_config(workdir, *overrides), overrides)


def test_detect_hands_the_detector_only_the_views_columns(operator_run, outside):
    workdir, cfg, result = operator_run
    online, _, _ = load_online_detector(str(result.checkpoint), None, workdir / "scratch")
    frame = load_frame(cfg.data).sort_values(["time", "device"], kind="stable")
    readings = frame.head(400).to_dict("records")
    seen: set[str] = set()
    encode = online.encoder.encode_record
    online.encoder.encode_record = lambda record: seen.update(record) or encode(record)

    clean = Collect()
    run_stream(online, batches(iter(readings)), [clean], every_window=True)
    assert seen == {"device", "time", *cfg.data.views[ROLE]}  # no label, attack or other role's column

    online, _, _ = load_online_detector(str(result.checkpoint), None, workdir / "scratch")
    noisy = [{**reading, **dict.fromkeys(outside, "not a number")} for reading in readings]
    polluted = Collect()
    summary = run_stream(online, batches(iter(noisy)), [polluted], every_window=True)
    assert summary.skipped == 0 and polluted.lines == clean.lines and clean.lines


def test_a_reading_lacking_a_view_feature_is_skipped(operator_run, outside):
    workdir, cfg, result = operator_run
    online, _, _ = load_online_detector(str(result.checkpoint), None, workdir / "scratch")
    reading = load_frame(cfg.data).iloc[0].to_dict()
    without_inside = {k: v for k, v in reading.items() if k != "sensor_primary"}
    without_outside = {k: v for k, v in reading.items() if k not in outside}
    bad, fine = online.push_many([without_inside, without_outside])
    assert isinstance(bad, BadReading) and "sensor_primary" in str(bad)
    assert fine is None  # taken: its window is still filling


class Collect:
    """A sink keeping the lines it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass
