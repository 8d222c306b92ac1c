"""Comparison tables as Markdown, CSV and LaTeX: `mean ± std` cells, counts, marks and footnotes."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from twinids.errors import TwinIDSError
from twinids.results.compare import compare_runs
from twinids.results.table_format import format_for, render
from twinids.results.tracked_runs import RunSelection, load_runs


@pytest.fixture
def comparison(store_uri, log_run):
    """lstm: two seeds from two code versions; random_forest: one run without test/auroc."""
    log_run(
        params={"model/name": "lstm"},
        metrics={"test/f1_macro": 0.8, "test/auroc": 0.9},
        tags={"twinids.code_version": "a"},
    )
    log_run(
        params={"model/name": "lstm"},
        metrics={"test/f1_macro": 0.9, "test/auroc": 0.9},
        tags={"twinids.code_version": "b"},
    )
    log_run(params={"model/name": "random_forest", "privacy/name": "none"}, metrics={"test/f1_macro": 0.7})
    runs = load_runs(RunSelection(experiment="twinids"), store_uri)
    return compare_runs(runs, by=["model.name"], metrics=["test/f1_macro", "test/auroc"])


def test_markdown_shows_mean_pm_std_counts_marks_and_footnotes(comparison):
    assert render(comparison, "md") == (
        "| model.name | runs | test/f1_macro | test/auroc | notes |\n"
        "|---|---|---|---|---|\n"
        "| lstm | 2 | 0.8500 ± 0.0707 | 0.9000 ± 0.0000 | † |\n"
        "| random_forest | 1 | 0.7000 | — |  |\n"
        "\n"
        "† model.name=lstm: code versions differ: a (1 run), b (1 run)\n"
    )


def test_csv_holds_tidy_numbers_that_read_back_with_pandas(comparison):
    table = pd.read_csv(io.StringIO(render(comparison, "csv")))
    assert list(table.columns) == [
        "model.name",
        "differs",
        "runs",
        "test/f1_macro mean",
        "test/f1_macro std",
        "test/f1_macro n",
        "test/auroc mean",
        "test/auroc std",
        "test/auroc n",
        "provenance",
    ]
    assert table["test/f1_macro mean"].tolist() == pytest.approx([0.85, 0.7])
    assert table["test/auroc n"].tolist() == [2, 0]
    assert table["provenance"].iloc[0] == "code versions differ: a (1 run), b (1 run)"


def test_rows_sharing_key_values_show_what_sets_them_apart_in_every_format(store_uri, log_run):
    log_run(params={"model/name": "lstm", "transfer/name": "finetune"}, metrics={"test/f1_macro": 0.801})
    log_run(params={"model/name": "lstm", "transfer/name": "none"}, metrics={"test/f1_macro": 0.75})
    split = compare_runs(load_runs(RunSelection(experiment="twinids"), store_uri), by=["model.name"])

    assert render(split, "md").splitlines()[:4] == [
        "| model.name | differs | runs | test/f1_macro |",
        "|---|---|---|---|",
        "| lstm | transfer.name=finetune | 1 | 0.8010 |",
        "| lstm | transfer.name=none | 1 | 0.7500 |",
    ]
    assert pd.read_csv(io.StringIO(render(split, "csv")))["differs"].tolist() == [
        "transfer.name=finetune",
        "transfer.name=none",
    ]
    assert render(split, "latex").startswith("\\begin{tabular}{llrr}")
    assert "lstm & transfer.name=none & 1 & 0.7500 \\\\" in render(split, "latex")


def test_latex_is_a_booktabs_tabular_with_escaped_names_and_pm(comparison):
    latex = render(comparison, "latex")
    assert latex.startswith("\\begin{tabular}{lrrrl}\n\\toprule\nmodel.name & runs & test/f1\\_macro")
    assert "random\\_forest & 1 & 0.7000 & -- &  \\\\" in latex
    assert "0.8500 $\\pm$ 0.0707" in latex and "\\textdagger{}" in latex
    assert latex.rstrip().endswith("\\end{tabular}")


def test_the_format_comes_from_the_option_or_the_file_extension():
    assert format_for(Path("t.tex"), None) == "latex"
    assert format_for(Path("t.txt"), "csv") == "csv"
    with pytest.raises(TwinIDSError, match=r"cannot tell the format of t\.txt"):
        format_for(Path("t.txt"), None)
    with pytest.raises(TwinIDSError, match="--format must be one of md, csv, latex; got 'html'"):
        format_for(Path("t.md"), "html")
