"""`twinids reproduce`: table specs, the runs behind each row, files with provenance, and re-runs that reuse runs."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from twinids.errors import TwinIDSError
from twinids.launch.reproduce import ReproduceSettings, reproduce_table
from twinids.launch.sweep import plan_jobs
from twinids.results.table_spec import load_table, table_names, tables_dir

TINY_TABLE = """\
caption: "Tiny: macro-F1 against ε"
sweeps:
  - [experiment=smoke, data.source.n_steps=900, model.module.net.hidden_size=8, seed=1, privacy=dp,
     privacy.target_epsilon=3]
  - [experiment=smoke, data.source.n_steps=900, model.module.net.hidden_size=8, "seed=1,3"]
rows: [model.name, privacy.name, privacy.target_epsilon]
metrics: [test/f1_macro, test/accuracy, audit/loss_threshold/mia_auc]
figure: {metric: test/f1_macro, x: privacy.target_epsilon}
mix_data: true
audits: [[windows_per_side=100]]   # twinids audit RUN_ID windows_per_side=100 on each run
quick:
  sweeps: [[experiment=smoke, data.source.n_steps=900, model.module.net.hidden_size=8, seed=1]]
"""


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", table_names(tables_dir()))
def test_every_shipped_table_plans_into_jobs_that_compose(name, quick, tmp_path):
    spec = load_table(name, quick)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    jobs = [job for sweep in spec.sweeps for job in plan_jobs(sweep, uri, spec.command)[0]]
    assert {job.command for job in jobs} == {spec.command}
    assert jobs and len({job.config_hash for job in jobs}) == len(jobs)
    assert spec.stem == (f"{name}_quick" if quick else name)


def test_the_shipped_tables_are_detection_privacy_cost_learned_twins_unseen_and_robustness():
    assert {"detection", "privacy", "cost", "learned_twins", "unseen", "robustness"} <= set(table_names(tables_dir()))


def test_an_unknown_table_is_one_line_naming_the_tables(twinids_cli):
    done = twinids_cli("reproduce", "detektion", "--quick")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: no table 'detektion' in ") and "detection" in line


def test_list_shows_each_table_with_its_caption(twinids_cli):
    done = twinids_cli("reproduce", "--list")
    assert done.returncode == 0, done.stderr
    assert any(line.startswith("privacy ") and "ε" in line for line in done.stdout.splitlines())


def test_a_table_runs_its_jobs_then_writes_md_csv_tex_and_figure_with_the_runs_behind_each_row(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_TABLE)
    spec = load_table("tiny", folder=tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    settings = ReproduceSettings([f"paths.output_dir={tmp_path / 'outputs'}"], launcher="debug", tracking_uri=uri,
                                 command="twinids reproduce tiny")  # fmt: skip
    result = reproduce_table(spec, settings, tmp_path / "results")
    assert result.failed() == 0
    names = sorted(path.name for path in result.written)
    assert names == ["tiny.csv", "tiny.md", "tiny.png", "tiny.svg", "tiny.tex"]

    table = pd.read_csv(tmp_path / "results" / "tiny.csv", comment="#")
    assert list(table["privacy.name"]) == ["dp", "none"] and list(table["runs"]) == [1, 2]
    finished = {o.run_id for s in result.summaries for o in s.outcomes}
    assert set(" ".join(table["run_ids"]).split()) == finished
    client = MlflowClient(uri)
    for run_id in table["run_ids"][1].split():
        assert client.get_run(run_id).data.params["privacy/name"] == "none"
    f1 = [client.get_run(r).data.metrics["test/f1_macro"] for r in table["run_ids"][1].split()]
    assert table["test/f1_macro mean"][1] == pytest.approx(sum(f1) / 2)
    for run_id in finished:  # every run was audited, and the table holds the figures
        assert client.get_run(run_id).data.params["audit.loss_threshold.windows_per_side"] == "100"
    assert table["audit/loss_threshold/mia_auc mean"].between(0, 1).all()

    markdown = (tmp_path / "results" / "tiny.md").read_text()
    assert markdown.startswith("# Tiny: macro-F1 against ε") and "## Provenance" in markdown
    assert "`twinids reproduce tiny`" in markdown and "machine: " in markdown and "code: twinids " in markdown
    assert "![test/f1_macro](tiny.png)" in markdown
    latex = (tmp_path / "results" / "tiny.tex").read_text()
    assert "\\caption{Tiny: macro-F1 against ε}" in latex and table["run_ids"][0] in latex

    again = reproduce_table(spec, settings, tmp_path / "results")
    assert {o.status for s in again.summaries for o in s.outcomes} == {"SKIPPED"}
    assert pd.read_csv(io.StringIO((tmp_path / "results" / "tiny.csv").read_text()), comment="#").equals(table)


ATTACK_TABLE = """\
caption: "Concealment"
sweeps:
  - [data=batadal, model=random_forest, model.estimator.n_estimators=5, "seed=1,2"]
attacks:
  - ["method=replay,iterative", sensors=3]   # iterative cannot attack a forest: its cells stay empty
rows: [model.name, attack.method, attack.sensors]
metrics: [clean/recall_attacked, test/recall_attacked]
"""


def test_a_table_with_attacks_is_made_of_attack_runs_each_seeded_by_its_detector_and_reused(tmp_path, shared_datasets):
    (tmp_path / "concealed.yaml").write_text(ATTACK_TABLE)
    spec = load_table("concealed", folder=tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    overrides = [f"paths.output_dir={tmp_path / 'outputs'}", f"data.root={shared_datasets}"]
    settings = ReproduceSettings(overrides, launcher="debug", tracking_uri=uri, command="twinids reproduce concealed")
    lines: list[str] = []
    reproduce_table(spec, settings, tmp_path / "results", on_follow_up=lines.append)
    assert sum("not run" in line for line in lines) == 2  # iterative on each forest, said and skipped
    table = pd.read_csv(tmp_path / "results" / "concealed.csv", comment="#")
    assert list(table["attack.method"]) == ["replay"] and list(table["runs"]) == [2]
    client = MlflowClient(uri)
    attack_runs = table["run_ids"][0].split()
    seeds = {client.get_run(run).data.params["attack/seed"] for run in attack_runs}
    assert seeds == {"1", "2"}  # each attack drew its channels with its detector's seed
    assert all(client.get_run(run).data.tags["twinids.job"] == "attack" for run in attack_runs)
    markdown = (tmp_path / "results" / "concealed.md").read_text()
    assert "twinids attack RUN_ID method=replay,iterative sensors=3" in markdown

    again: list[str] = []
    reproduce_table(spec, settings, tmp_path / "results", on_follow_up=again.append)
    assert not any(line.endswith(tuple(attack_runs)) or ": run " in line for line in again)  # found, not run again
    assert pd.read_csv(tmp_path / "results" / "concealed.csv", comment="#")["run_ids"][0] == table["run_ids"][0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sweeps: [[model=lstm]]\ncolumns: [x]\n", r"odd\.yaml: unknown key 'columns'; known keys: attacks, audits"),
        ("- a\n", "a mapping"),
        (
            "sweeps: [[model=lstm]]\nrows: [x]\nmetrics: [y]\nattacks: [[sensors=1]]\nresponses: [[attack=none]]\n",
            "made of attack runs or of response runs",
        ),
    ],
)
def test_a_table_with_an_unknown_key_or_not_a_mapping_names_the_file(tmp_path, content, message):
    (tmp_path / "odd.yaml").write_text(content)
    with pytest.raises(TwinIDSError, match=message):
        load_table("odd", folder=tmp_path)


def test_the_shipped_response_table_is_made_of_response_runs():
    spec = load_table("response")
    command, overrides = spec.follow_ups
    assert command == "respond" and spec.rows == ["response.attack"]
    assert "none" in overrides[0][0]  # the attack-free row: what false alarms cost


def test_a_table_without_a_quick_variant_says_so(tmp_path):
    (tmp_path / "plain.yaml").write_text("sweeps: [[model=lstm]]\nrows: [model.name]\nmetrics: [test/f1_macro]\n")
    with pytest.raises(TwinIDSError, match="has no quick variant"):
        load_table("plain", quick=True, folder=tmp_path)


def test_tables_dir_prefers_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    monkeypatch.chdir(tmp_path)
    assert tables_dir() == Path(tmp_path / "experiments").resolve()


def test_the_data_folder_in_a_tables_provenance_is_relative_to_where_reproduce_ran(tmp_path, monkeypatch):
    from twinids.launch.reproduce import shown_path

    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert shown_path(str(tmp_path / "shared" / "datasets")) == "../shared/datasets"
    assert shown_path("data") == "data"


def test_a_sqlite_store_in_a_tables_provenance_is_relative_and_a_server_stays_as_it_is(tmp_path, monkeypatch):
    from twinids.launch.reproduce import shown_store

    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert shown_store(f"sqlite:///{tmp_path / 'mlflow.db'}") == "sqlite:///../mlflow.db"
    assert shown_store("http://mlflow-host:5000") == "http://mlflow-host:5000"
