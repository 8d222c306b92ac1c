"""The studies commands as typer functions: `compare` prints, writes and plots; `sweep --dry-run` plans."""

from __future__ import annotations

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from twinids.cli.studies import SWEEP_CONTEXT, compare_command, sweep_command
from twinids.errors import TwinIDSError

app = typer.Typer()
app.command("compare")(compare_command)
app.command("sweep", context_settings=SWEEP_CONTEXT)(sweep_command)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_compare_prints_a_table_of_groups_with_mean_and_std(synthetic_store):
    by = "model.name,privacy.name,privacy.target_epsilon"
    done = invoke("compare", "--tracking-uri", synthetic_store, "--tag", "twinids.dataset=nsl_kdd", "--by", by)
    assert done.exit_code == 0, done.output
    assert "25 runs in 24 groups — experiment 'twinids'" in done.output
    assert "model.name" in done.output and "test/f1_macro" in done.output and "±" in done.output


def test_compare_writes_markdown_csv_and_latex_files(synthetic_store, tmp_path):
    common = ["compare", "--tracking-uri", synthetic_store, "--by", "data.name", "--metrics", "test/f1_macro"]
    for name in ("table.md", "table.csv", "table.tex"):
        done = invoke(*common, "--mix-data", "--out", str(tmp_path / name))
        assert done.exit_code == 0, done.output
        assert f"wrote {tmp_path / name}" in done.output
    assert (tmp_path / "table.md").read_text().startswith("| data.name | differs | runs | test/f1_macro |")
    assert pd.read_csv(tmp_path / "table.csv")["runs"].sum() == 50
    assert (tmp_path / "table.tex").read_text().startswith("\\begin{tabular}")


def test_compare_prints_a_format_to_stdout_without_out(synthetic_store):
    done = invoke("compare", "--tracking-uri", synthetic_store, "--by", "model.name", "--mix-data", "--format", "csv")
    assert done.exit_code == 0 and done.output.startswith("model.name,differs,runs,test/f1_macro mean")


def test_compare_draws_the_first_metric_against_epsilon(synthetic_store, tmp_path):
    done = invoke(
        "compare",
        "--tracking-uri",
        synthetic_store,
        "--tag",
        "twinids.dataset=unsw_nb15",
        "--plot",
        str(tmp_path / "eps.png"),
    )
    assert done.exit_code == 0, done.output
    assert (tmp_path / "eps.png").exists() and (tmp_path / "eps.svg").exists()


def test_compare_refusals_are_user_errors(synthetic_store):
    done = invoke("compare", "--tracking-uri", synthetic_store, "--by", "model.nam")
    assert isinstance(done.exception, TwinIDSError) and "unknown --by key 'model.nam'" in str(done.exception)
    done = invoke("compare", "--tracking-uri", synthetic_store, "--tag", "twinids.model=none")
    assert isinstance(done.exception, TwinIDSError) and str(done.exception).startswith("no finished runs match")


def test_sweep_dry_run_lists_the_jobs():
    done = invoke("sweep", "--dry-run", "model=lstm,random_forest", "seed=range(2)")
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "1  model=lstm seed=0",
        "2  model=lstm seed=1",
        "3  model=random_forest seed=0",
        "4  model=random_forest seed=1",
        "4 jobs",
    ]


@pytest.mark.parametrize("args", [["--dry-run", "model=lstmx"], ["model=lstmx"]])
def test_a_sweep_over_an_unknown_option_is_refused_with_or_without_dry_run(args):
    done = invoke("sweep", *args)
    assert isinstance(done.exception, TwinIDSError) and "unknown option 'lstmx'" in str(done.exception)
