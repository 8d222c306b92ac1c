"""The ε plot: one line per model, error bars over seeds, non-private runs at ∞, as PNG and SVG."""

from __future__ import annotations

import pytest

from twinids.errors import TwinIDSError
from twinids.results.comparison_plot import plot_metric
from twinids.results.tracked_runs import RunSelection, load_runs


def test_metric_against_epsilon_is_drawn_per_model_with_non_private_runs_at_infinity(synthetic_store, tmp_path):
    runs = load_runs(RunSelection(experiment="twinids", tags={"twinids.dataset": "nsl_kdd"}), synthetic_store)

    written = plot_metric(runs, tmp_path / "figures" / "f1_vs_eps.png", "test/f1_macro")

    png, svg = written
    assert (png.name, svg.name) == ("f1_vs_eps.png", "f1_vs_eps.svg")
    assert png.read_bytes().startswith(b"\x89PNG")
    text = svg.read_text()
    for label in ("lstm", "random_forest", "logistic_regression", "lstm_sae_mha", "non-private", "∞", "0.5", "8"):
        assert label in text
    assert "data.name=nsl_kdd" in text  # a key shared by every line goes to the title, not the legend


def test_a_key_with_non_numeric_values_cannot_be_the_x_axis(synthetic_store, tmp_path):
    runs = load_runs(RunSelection(experiment="twinids", tags={"twinids.dataset": "nsl_kdd"}), synthetic_store)
    with pytest.raises(TwinIDSError, match=r"cannot plot against model\.name: its value '.*' is not a number"):
        plot_metric(runs, tmp_path / "x.png", "test/f1_macro", x="model.name")


def test_an_x_key_no_run_has_is_named(store_uri, log_run, tmp_path):
    log_run(params={"model/name": "lstm", "privacy/name": "none"}, metrics={"test/f1_macro": 0.9})
    runs = load_runs(RunSelection(experiment="twinids"), store_uri)
    with pytest.raises(TwinIDSError, match=r"unknown --x key 'privacy\.target_epsilon'; config keys of these runs"):
        plot_metric(runs, tmp_path / "x.png", "test/f1_macro")


def test_private_runs_without_a_value_are_left_out_and_nothing_left_is_refused(store_uri, log_run, tmp_path):
    log_run(params={"privacy/name": "dp", "privacy/target_epsilon": None}, metrics={"test/f1_macro": 0.9})
    runs = load_runs(RunSelection(experiment="twinids"), store_uri)
    with pytest.raises(TwinIDSError, match="nothing to plot"):
        plot_metric(runs, tmp_path / "x.png", "test/f1_macro")
