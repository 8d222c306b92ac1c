"""End to end on real data: a baseline trains on NSL-KDD through the CLI; bad CSVs leave nothing behind."""

from __future__ import annotations

import re

import mlflow
import pytest

pytestmark = pytest.mark.slow


def test_logistic_regression_on_nsl_kdd_reproduces_on_kddtest_plus_and_drops_on_kddtest_21(
    twinids_cli, shared_datasets, tmp_path
):
    trained = twinids_cli("train", "data=nsl_kdd", "model=logistic_regression", f"data.root={shared_datasets}")
    assert trained.returncode == 0, trained.stderr
    run_id = re.search(r"run id: ([0-9a-f]{32})", trained.stdout).group(1)
    same_split = twinids_cli("eval", run_id)
    harder_split = twinids_cli("eval", run_id, "data.source.test_file=KDDTest-21")
    assert same_split.returncode == 0 and harder_split.returncode == 0, same_split.stderr + harder_split.stderr
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    logged, reproduced, harder = (
        client.get_run(re.search(r"run id: ([0-9a-f]{32})", r.stdout).group(1)).data.metrics
        for r in (trained, same_split, harder_split)
    )
    assert 0.6 < logged["test/f1_macro"] < 0.95  # KDDTest+ is hard; near 1.0 would mean a leak
    test_metrics = {k: v for k, v in logged.items() if k.startswith("test/")}
    assert {k: v for k, v in reproduced.items() if k.startswith("test/")} == test_metrics
    assert harder["test/f1_macro"] < logged["test/f1_macro"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("time,x,label\n1,0.5,0\n2,nan,1\n3,0.1,0\n4,0.2,1\n", "NaN"),
        ("time,x,label\n1,0.5,0\n2,0.3,7\n3,0.1,0\n4,0.2,1\n", "label"),
        ("time,x,verdict\n1,0.5,0\n2,0.3,1\n", "label"),
        ("", "empty"),
    ],
)
def test_bad_csv_gives_one_line_and_leaves_no_run_behind(twinids_cli, tmp_path, content, fragment):
    (tmp_path / "readings.csv").write_text(content)
    result = twinids_cli(
        "train",
        "data=csv",
        f"data.root={tmp_path}",
        "data.source.path=readings.csv",
        "data.source.time_column=time",
        "data.window=2",
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert not (tmp_path / "mlruns").exists()  # refused before the store (let alone a run) exists
    assert not (tmp_path / "outputs").exists()
