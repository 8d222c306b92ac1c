"""The ε plot: one line per model, error bars over seeds (inside [0, 1] for scores), non-private runs at ∞, as PNG
and SVG; a file name of any other kind is refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinids.errors import TwinIDSError
from twinids.results.comparison_plot import _draw, error_bar, is_unit_interval, plot_metric
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


@pytest.mark.parametrize("name", ["plot.txt", "plot", "plot.pdf"])
def test_a_plot_file_that_is_neither_png_nor_svg_is_refused_and_nothing_is_written(synthetic_store, tmp_path, name):
    runs = load_runs(RunSelection(experiment="twinids", tags={"twinids.dataset": "nsl_kdd"}), synthetic_store)
    with pytest.raises(TwinIDSError, match=rf"cannot draw a plot into .*{name}: .* name it with \.png or \.svg"):
        plot_metric(runs, tmp_path / name, "test/f1_macro")
    assert list(tmp_path.iterdir()) == []


def test_an_svg_name_writes_the_png_beside_it(synthetic_store, tmp_path):
    runs = load_runs(RunSelection(experiment="twinids", tags={"twinids.dataset": "nsl_kdd"}), synthetic_store)
    png, svg = plot_metric(runs, tmp_path / "f1.svg", "test/f1_macro")
    assert (png.name, svg.name) == ("f1.png", "f1.svg") and png.exists() and svg.exists()


@given(mean=st.floats(0.0, 1.0), std=st.floats(0.0, 2.0))
def test_error_bars_of_a_score_in_the_unit_interval_stay_inside_it_and_never_grow(mean, std):
    below, above = error_bar(mean, std, bounded=True)
    assert mean - below >= 0.0 and mean + above <= 1.0 + 1e-12  # up to rounding of 1 - mean
    assert below <= std and above <= std
    assert below == std or mean - below == 0.0
    assert above == std or mean + above == pytest.approx(1.0)


def test_the_drawn_error_bars_of_f1_near_one_end_at_one_and_unbounded_metrics_keep_theirs():
    lines = {"lstm": [(1.0, 0.97, 0.05), (8.0, 0.99, 0.04), (math.inf, 0.995, 0.02)]}

    def bar_ends(metric: str) -> list[float]:
        figure = _draw(lines, "privacy.target_epsilon", metric, "t", bounded=is_unit_interval(metric))
        segments = [s for c in figure.axes[0].collections for s in c.get_segments()]
        return [y for segment in segments for _, y in segment]

    assert is_unit_interval("test/f1_macro") and is_unit_interval("test/recall_attack/replay")
    # below each mean by its std; above it, cut at 1
    assert sorted(bar_ends("test/f1_macro")) == pytest.approx([0.92, 0.95, 0.975, 1.0, 1.0, 1.0])
    assert not is_unit_interval("time/fit_s")
    assert sorted(bar_ends("time/fit_s")) == pytest.approx([0.92, 0.95, 0.975, 1.015, 1.02, 1.03])
