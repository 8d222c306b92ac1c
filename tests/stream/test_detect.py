"""`twinids detect` (issue 17 §1): a trained detector on a stream decides as `twinids eval` does on the same readings.

Four small runs on the simulator share the module: a supervised LSTM, a one-class forecaster and the physics residual
(both smoothing their scores over 3 windows), and a random forest.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from twinids.adversary.attack_job import UnloggedRun
from twinids.adversary.threat import covered_rows
from twinids.stream.detect_job import load_online_detector, run_stream
from twinids.stream.sinks import StreamSink
from twinids.stream.sources import batches
from twinids.training.train import train

RUNS = {
    "lstm": [],
    "forecaster": ["model=lstm_forecaster", "task=score", "data.train_on=normal", "model.module.scorer.smooth=3"],
    "physics": ["model=physics_residual", "task=score", "model.scorer.smooth=3"],
    "forest": ["model=random_forest", "model.estimator.n_estimators=10"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, smoke_config):
    """The four runs, trained once: workdir, {name: run id}."""
    workdir = tmp_path_factory.mktemp("detect")
    ids = {}
    for name, overrides in RUNS.items():
        cfg = smoke_config(workdir, *overrides)
        ids[name] = train(cfg, list(overrides)).run_id
    return workdir, ids


@pytest.fixture(scope="module")
def stream_csv(runs, cli_runner_factory):
    """`twinids data simulate` output (another seed than the runs', 500 steps), written once for the module."""
    workdir, _ = runs
    cli = cli_runner_factory(workdir)
    written = cli("data", "simulate", "--out", "stream.csv", "data.source.n_steps=500", "seed=5")
    assert written.returncode == 0, written.stderr
    return workdir / "stream.csv"


def split_readings(run_id: str, workdir):
    """The online detector of a run, its test split as readings (the frame's rows, in order), and the eval report."""
    from omegaconf import OmegaConf

    from twinids.data.registry import build_windows, load_frame
    from twinids.tracking.queries import download_checkpoint
    from twinids.training.checkpoint_io import read_card
    from twinids.training.detector import JobContext, make_detector

    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    online, cfg, _ = load_online_detector(run_id, uri, workdir / "scratch")
    checkpoint = download_checkpoint(run_id, workdir / "scratch", uri)
    card = read_card(checkpoint)
    data = build_windows(cfg.data)
    detector = make_detector(OmegaConf.create(card.config), data, training=False)
    detector.load(checkpoint)
    report = detector.test(data, JobContext(UnloggedRun(), card, workdir / "scratch"))  # what eval computes
    frame = load_frame(cfg.data).sort_values(["device", "time"], kind="stable", ignore_index=True)
    rows = covered_rows(data.starts["test"], data.window)
    return online, frame.iloc[rows].to_dict("records"), data, report


def alarm_confusion(decisions: list[dict], readings: list[dict]) -> np.ndarray:
    """(label of a window's last reading) x (alarm) counts of streamed decisions."""
    labels = {(r["device"], r["time"]): int(r["label"]) for r in readings}
    confusion = np.zeros((2, 2), dtype=np.int64)
    for decision in decisions:
        confusion[labels[(decision["device"], decision["time"])], int(decision["alarm"])] += 1
    return confusion


def normal_or_not(confusion: np.ndarray) -> np.ndarray:
    """A multi-class confusion matrix as (true normal/attack) x (predicted normal/attack), as an alarm decides."""
    return np.stack([confusion[:, 0], confusion[:, 1:].sum(axis=1)], axis=1)


class Collect:
    """A sink keeping the decisions it is given."""

    def __init__(self) -> None:
        self.decisions: list[dict] = []

    def write(self, line: str) -> None:
        self.decisions.append(json.loads(line))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", list(RUNS))
def test_the_stream_decides_the_test_split_as_eval_does(runs, name):
    workdir, ids = runs
    online, readings, data, report = split_readings(ids[name], workdir)
    sink = Collect()
    summary = run_stream(online, batches(iter(readings)), [sink], every_window=True)
    assert summary.skipped == 0 and summary.decided == len(data.starts["test"])

    # the same windows, decided one at a time, give eval's confusion matrix to the window
    assert np.array_equal(alarm_confusion(sink.decisions, readings), normal_or_not(report.confusion))

    # and the same scores as the detector gives the whole split at once, smoothing included (to 1e-6)
    rule = online.rule
    raw, _ = rule.score(data.windows("test"))
    from twinids.scoring.normalize import smooth

    expected = smooth(raw, data.groups["test"], rule.smooth)
    assert np.allclose([d["score"] for d in sink.decisions], expected, rtol=1e-6, atol=1e-6)


def test_eval_on_other_data_reads_it_through_the_runs_own_encoder(runs):
    from twinids.config import compose
    from twinids.data.registry import build_windows, load_frame
    from twinids.training.evaluate import evaluate

    workdir, ids = runs
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    other = ["data.source.replica=1"]  # the same plant on another day: a scaler fitted on it would shift every input
    result = evaluate(ids["lstm"], other, uri)
    online, _, card = load_online_detector(ids["lstm"], uri, workdir / "scratch")
    data_cfg = compose([*card.overrides, *other]).data  # what eval recomposes: the run's overrides, then these
    data = build_windows(data_cfg)
    frame = load_frame(data_cfg).sort_values(["device", "time"], kind="stable", ignore_index=True)
    readings = frame.iloc[covered_rows(data.starts["test"], data.window)].to_dict("records")
    sink = Collect()
    run_stream(online.fresh(), batches(iter(readings)), [sink], every_window=True)  # the run's encoder, as trained
    assert np.array_equal(alarm_confusion(sink.decisions, readings), normal_or_not(result.confusion))
    from sklearn.metrics import roc_auc_score  # scores, not only decisions: any other scaling moves them

    labels = {(r["device"], r["time"]): int(r["label"]) for r in readings}
    truth = [labels[(decision["device"], decision["time"])] for decision in sink.decisions]
    auroc = roc_auc_score(truth, [decision["score"] for decision in sink.decisions])
    assert auroc == pytest.approx(result.metrics["test/auroc"], abs=1e-6)


def test_a_csv_written_by_data_simulate_is_a_source_as_it_is(runs, cli_runner_factory, stream_csv):
    workdir, ids = runs
    result = cli_runner_factory(workdir)("detect", ids["physics"], "--source", stream_csv.name, "--every-window")
    assert result.returncode == 0, result.stderr
    import pandas as pd

    decisions = [json.loads(line) for line in result.stdout.splitlines()]  # stdout: JSON lines, nothing else
    per_device = pd.read_csv(workdir / "stream.csv").groupby("device").size()
    assert len(decisions) == int((per_device - 20 + 1).clip(lower=0).sum())  # one per full window of 20
    assert {"device", "time", "score", "threshold", "alarm", "predicted"} == set(decisions[0])
    assert "windows decided" in result.stderr.splitlines()[-1]


def test_bad_readings_get_one_line_each_and_the_stream_goes_on(runs, cli_runner_factory, stream_csv):
    import pandas as pd

    workdir, ids = runs
    cli = cli_runner_factory(workdir)
    frame = pd.read_csv(stream_csv)
    frame["setpoint"] = frame["setpoint"].astype(object)
    frame.loc[5, "sensor_primary"] = float("nan")
    frame.loc[7, "device"] = "no_such_device"
    frame.loc[9, "setpoint"] = "warm"
    frame.to_csv(workdir / "dirty.csv", index=False)
    result = cli("detect", ids["lstm"], "--source", "dirty.csv", "--every-window")
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 3, result.stderr
    assert "not finite" in skipped[0] and "unknown device 'no_such_device'" in skipped[1]
    assert "not a number" in skipped[2]
    assert f"{len(frame) - 3} readings (3 skipped)" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--source", "missing.csv"], "--source missing.csv: no such file"),
        (["--source", "mqtt://127.0.0.1/"], "--source must be mqtt://host[:port]/topic"),
        (["--source", "simulator", "model.name=x"], "takes data.source.* overrides only"),
        (["--source", "missing.csv", "data.source.seed=3"], "they need --source simulator"),
        (["--source", "simulator", "--speed", "0"], "--speed must be positive"),
    ],
)
def test_bad_detect_settings_are_one_line(runs, cli_runner_factory, arguments, message):
    workdir, ids = runs
    result = cli_runner_factory(workdir)("detect", ids["lstm"], *arguments)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_a_file_lacking_a_feature_is_refused_whole(runs, cli_runner_factory, stream_csv):
    import pandas as pd

    workdir, ids = runs
    cli = cli_runner_factory(workdir)
    pd.read_csv(stream_csv).drop(columns=["dt"]).to_csv(workdir / "short.csv", index=False)
    result = cli("detect", ids["forest"], "--source", "short.csv", "--out", "alerts.jsonl")
    assert result.returncode != 0 and "lacks the columns ['dt']" in result.stderr
    assert not (workdir / "alerts.jsonl").exists() or (workdir / "alerts.jsonl").read_text() == ""


def test_alerts_appended_to_a_file_keep_what_it_held(runs, cli_runner_factory, stream_csv):
    workdir, ids = runs
    cli = cli_runner_factory(workdir)
    (workdir / "kept.jsonl").write_text('{"earlier": true}\n')
    result = cli("detect", ids["physics"], "--source", stream_csv.name, "--out", "kept.jsonl", "--every-window")
    assert result.returncode == 0 and result.stdout == ""
    lines = (workdir / "kept.jsonl").read_text().splitlines()
    assert lines[0] == '{"earlier": true}' and len(lines) > 1


def test_the_simulator_runs_live_as_a_source(runs, cli_runner_factory):
    workdir, ids = runs
    result = cli_runner_factory(workdir)(
        "detect", ids["lstm"], "--source", "simulator", "data.source.seed=9", "--max-readings", "600", "--every-window"
    )
    assert result.returncode == 0, result.stderr
    times = [json.loads(line)["time"] for line in result.stdout.splitlines()]
    assert times == sorted(times)  # devices interleaved in time order
    assert "600 readings (0 skipped)" in result.stderr


def test_stream_sink_stops_quietly_when_its_reader_goes_away(runs, stream_csv):
    import os
    import subprocess
    import sys
    from pathlib import Path

    workdir, ids = runs
    twinids = Path(sys.executable).with_name("twinids")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"}
    command = f"'{twinids}' detect {ids['physics']} --source {stream_csv.name} --every-window | head -n 2"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_stream_sink_writes_one_line_per_decision():
    import io

    stream = io.StringIO()
    sink = StreamSink(stream)
    sink.write('{"a":1}')
    sink.write('{"a":2}')
    assert stream.getvalue() == '{"a":1}\n{"a":2}\n'
