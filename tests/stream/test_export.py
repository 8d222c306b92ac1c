"""`twinids export --format onnx` (issue 17 §2): onnxruntime scores a bundle as torch scores its run.

Small runs on the simulator share the module: the supervised LSTM and hybrid, the one-class forecaster (smoothing over
3 windows), the one-class hybrid (its reconstruction error), the LSTM autoencoder (whose scorer fixes the window
length), the physics twin's residual (no net: its scorer alone), and a random forest (refused). Each is exported once,
traced at the run's window of 20.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from twinids.errors import TwinIDSError
from twinids.stream.bundle import BUNDLE_FILE, FORMAT_VERSION, MODEL_FILE, load_bundle
from twinids.stream.detect_job import load_run
from twinids.stream.export import export_run
from twinids.training.train import train

ONE_CLASS = ["task=score", "data.train_on=normal"]
RUNS = {
    "lstm": [],
    "hybrid": ["model=lstm_sae_mha"],
    "forecaster": ["model=lstm_forecaster", *ONE_CLASS, "model.module.scorer.smooth=3"],
    "hybrid_score": ["model=lstm_sae_mha_score", *ONE_CLASS],
    "autoencoder": ["model=lstm_autoencoder", *ONE_CLASS],
    "physics": ["model=physics_residual", "task=score", "model.scorer.smooth=3"],
    "forest": ["model=random_forest", "model.estimator.n_estimators=10"],
}
EXPORTED = [name for name in RUNS if name != "forest"]
DYNAMIC_LENGTH = [name for name in EXPORTED if name != "autoencoder"]  # its scorer reads every step of 20


@pytest.fixture(scope="module")
def runs(tmp_path_factory, smoke_config):
    """The runs, trained once, and the bundles of those that export: workdir, {name: run id}, {name: bundle}."""
    workdir = tmp_path_factory.mktemp("export")
    ids, bundles = {}, {}
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    for name, overrides in RUNS.items():
        ids[name] = train(smoke_config(workdir, *overrides), list(overrides)).run_id
        if name in EXPORTED:
            bundles[name] = export_run(ids[name], workdir / "bundles" / name, "onnx", uri)
    return workdir, ids, bundles


@pytest.fixture(scope="module")
def stream_csv(runs, cli_runner_factory):
    """`twinids data simulate` output (another seed than the runs', 500 steps), written once for the module."""
    cli = cli_runner_factory(runs[0])
    written = cli("data", "simulate", "--out", "stream.csv", "data.source.n_steps=500", "seed=5")
    assert written.returncode == 0, written.stderr
    return runs[0] / "stream.csv"


def windows_of_length(data, length: int, count: int) -> np.ndarray:
    """`count` windows of `length` consecutive encoded rows from the run's test split starts (longer than the run's
    window, one may run into the next device's rows: the scores are compared, not judged)."""
    starts = data.starts["test"]
    starts = starts[starts + length <= len(data.rows)][:count]
    assert len(starts) == count
    return data.rows[starts[:, None] + np.arange(length)]


@pytest.mark.parametrize("name", EXPORTED)
def test_onnxruntime_scores_equal_torch_at_other_batch_sizes_and_lengths(runs, name):
    workdir, ids, bundles = runs
    run = load_run(ids[name], f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", workdir / "scratch")
    torch_rule, bundle = run.detector.window_rule(), load_bundle(bundles[name])
    assert bundle.description["window"] == run.data.window == 20
    assert (bundle.rule.smooth, bundle.rule.threshold) == (torch_rule.smooth, torch_rule.threshold)
    lengths = (13, 31, 20) if name in DYNAMIC_LENGTH else (20,)
    assert bundle.description["dynamic_steps"] == (name in DYNAMIC_LENGTH)
    for length in lengths:
        for batch in (1, 7, 64):
            windows = windows_of_length(run.data, length, batch)
            expected, expected_classes = torch_rule.score(windows)
            found, found_classes = bundle.rule.score(windows)
            assert found.dtype == np.float64 and found.shape == (batch,)
            assert np.allclose(found, expected, rtol=1e-5, atol=1e-5), (length, batch, np.abs(found - expected).max())
            if expected_classes is None:
                assert found_classes is None
            else:
                assert np.array_equal(found_classes, expected_classes)


def test_a_fixed_length_graph_refuses_other_lengths_as_torch_does(runs):
    workdir, ids, bundles = runs
    run = load_run(ids["autoencoder"], f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", workdir / "scratch")
    windows = windows_of_length(run.data, 13, 2)
    with pytest.raises(TwinIDSError):
        run.detector.window_rule().score(windows)
    with pytest.raises(TwinIDSError, match=r"cannot score windows of shape \(2, 13, "):
        load_bundle(bundles["autoencoder"]).rule.score(windows)


@pytest.mark.parametrize("name", ["hybrid", "forecaster"])
def test_detect_on_the_bundle_writes_the_alerts_of_the_run(runs, cli_runner_factory, stream_csv, name):
    workdir, ids, bundles = runs
    cli = cli_runner_factory(workdir)
    on_run = cli("detect", ids[name], "--source", "stream.csv", "--every-window")
    on_bundle = cli("detect", str(bundles[name]), "--source", "stream.csv", "--every-window")
    assert on_run.returncode == 0 and on_bundle.returncode == 0, on_run.stderr + on_bundle.stderr
    decided_run = [json.loads(line) for line in on_run.stdout.splitlines()]
    decided_bundle = [json.loads(line) for line in on_bundle.stdout.splitlines()]
    assert len(decided_run) == len(decided_bundle) > 100
    key = ("device", "time", "alarm", "predicted", "threshold")
    assert [[d[k] for k in key] for d in decided_bundle] == [[d[k] for k in key] for d in decided_run]
    scores = np.array([[b["score"], r["score"]] for b, r in zip(decided_bundle, decided_run, strict=True)])
    assert np.allclose(scores[:, 0], scores[:, 1], rtol=1e-5, atol=1e-5)
    if name == "forecaster":  # its smoothed score crosses the threshold: the alarms compared are not all off
        assert any(d["alarm"] for d in decided_run)


def test_detect_on_a_bundle_never_imports_torch(runs, stream_csv):
    import subprocess

    workdir, _, bundles = runs
    script = (
        "import sys; from twinids.stream.detect_job import detect; "
        f"summary = detect({str(bundles['lstm'])!r}, 'stream.csv', max_readings=300); "
        "print(summary.decided, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, check=True)
    decided, torch_loaded = done.stdout.split()
    assert int(decided) > 0 and torch_loaded == "False"


def test_export_writes_a_self_describing_bundle_from_the_command_line(runs, cli_runner_factory):
    workdir, ids, _ = runs
    result = cli_runner_factory(workdir)("export", ids["lstm"], "--format", "onnx", "--out", "cli_bundle")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cli_bundle"
    assert {path.name for path in (workdir / "cli_bundle").iterdir()} == {BUNDLE_FILE, MODEL_FILE}
    description = json.loads((workdir / "cli_bundle" / BUNDLE_FILE).read_text())
    assert description["format_version"] == FORMAT_VERSION and description["source"]["run_id"] == ids["lstm"]
    assert description["source"]["model"] == "lstm" and len(description["source"]["config_hash"]) >= 8
    assert description["class_names"][0] == "normal" and description["threshold"] is None
    assert set(description["encoder"]) >= {"scaler", "numeric", "categorical", "categories", "statistics"}


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_scikit_learn_detector_is_refused_with_the_reason(runs, cli_runner_factory):
    workdir, ids, _ = runs
    line = one_error_line(cli_runner_factory(workdir)("export", ids["forest"], "--out", "forest_bundle"))
    assert "cannot be exported to ONNX" in line and "scikit-learn" in line
    assert not (workdir / "forest_bundle").exists()


def test_export_refuses_a_folder_that_holds_files(runs, cli_runner_factory):
    workdir, ids, bundles = runs
    line = one_error_line(cli_runner_factory(workdir)("export", ids["lstm"], "--out", str(bundles["hybrid"])))
    assert "not an empty folder" in line


def broken(folder, name: str):
    """A copy of a bundle with one thing wrong."""
    import shutil

    copy = folder.parent / f"broken_{name}"
    shutil.copytree(folder, copy)
    description = json.loads((copy / BUNDLE_FILE).read_text())
    if name == "corrupt_json":
        (copy / BUNDLE_FILE).write_text(json.dumps(description)[:-20])
    elif name == "version":
        (copy / BUNDLE_FILE).write_text(json.dumps({**description, "format_version": FORMAT_VERSION + 1}))
    elif name == "no_json":
        (copy / BUNDLE_FILE).unlink()
    elif name == "corrupt_model":
        (copy / MODEL_FILE).write_bytes((copy / MODEL_FILE).read_bytes()[:100])
    elif name == "bad_encoder":
        del description["encoder"]["numeric"]
        (copy / BUNDLE_FILE).write_text(json.dumps(description))
    return copy


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("corrupt_json", "not valid JSON"),
        ("version", f"bundle format version {FORMAT_VERSION + 1}"),
        ("no_json", "bundle.json: missing"),
        ("corrupt_model", "onnxruntime cannot load it"),
        ("bad_encoder", "encoder state lacks"),
    ],
)
def test_a_broken_bundle_is_one_error_line(runs, cli_runner_factory, stream_csv, name, message):
    workdir, _, bundles = runs
    folder = broken(bundles["lstm"], name)
    result = cli_runner_factory(workdir)("detect", str(folder), "--source", "stream.csv")
    assert message in one_error_line(result)


def test_a_bundle_takes_no_simulator_source(runs, cli_runner_factory):
    workdir, _, bundles = runs
    line = one_error_line(cli_runner_factory(workdir)("detect", str(bundles["lstm"]), "--source", "simulator"))
    assert "does not hold" in line


def test_a_missing_bundle_folder_is_one_error_line(runs, cli_runner_factory, stream_csv):
    workdir, _, _ = runs
    line = one_error_line(cli_runner_factory(workdir)("detect", "bundles/nowhere", "--source", "stream.csv"))
    assert "bundles/nowhere: no such bundle folder" in line


def test_a_failed_export_leaves_no_half_bundle(runs, tmp_path, monkeypatch):
    import twinids.stream.export as export

    workdir, ids, _ = runs
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no graph can pass: the parity check refuses it
    with pytest.raises(TwinIDSError, match="away from torch"):
        export_run(ids["lstm"], tmp_path / "half", "onnx", f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    assert list((tmp_path / "half").iterdir()) == []


def test_export_without_the_onnx_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what an environment without the extra imports
    with pytest.raises(TwinIDSError, match=r"pip install 'twinids\[onnx\]'"):
        export_run("any-run", None)


def test_detect_on_a_bundle_without_onnxruntime_names_the_extra(runs, monkeypatch):
    _, _, bundles = runs
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TwinIDSError, match=r"pip install 'twinids\[onnx\]'"):
        load_bundle(bundles["lstm"])


def test_an_unknown_format_is_refused():
    with pytest.raises(TwinIDSError, match="--format must be one of onnx"):
        export_run("any-run", None, "tflite")
