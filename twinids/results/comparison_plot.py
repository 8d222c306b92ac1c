"""Plot one metric against a numeric config key, a line per group, error bars over seeds (PNG and SVG).

Non-private runs (`privacy.name=none`, so no ε) are drawn at ε = ∞: one point per line at the right edge,
on a tick labelled "∞ (non-private)", apart from the finite values. Error bars of a score bounded to [0, 1]
(F1, accuracy, AUROC, ...) are cut at its bounds: mean + std may pass 1, the score never does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from twinids.errors import TwinIDSError
from twinids.models.metric_names import RECALL_PER_ATTACK, UNIT_INTERVAL_METRICS
from twinids.results.compare import compare_runs, default_keys, key_column, shown_value

if TYPE_CHECKING:
    import pandas as pd

PRIVACY_KEY = "privacy.name"
NON_PRIVATE = "none"
INFINITY_LABEL = "∞\n(non-private)"
PLOT_SUFFIXES = (".png", ".svg")  # both are written, whichever the path names
UNIT_INTERVAL_PREFIXES = (f"{RECALL_PER_ATTACK}/",)  # recall per attack type


def plot_metric(
    runs: pd.DataFrame,
    path: Path,
    metric: str,
    x: str = "privacy.target_epsilon",
    by: Sequence[str] | None = None,
    mix_data: bool = False,
) -> list[Path]:
    """Draw `metric` (mean ± std over seeds) against config key `x`, one line per group of the other `by` keys.

    Rows `compare` splits because their runs are not repeats of one another get lines of their own, labelled
    with what they differ in.

    Args:
        runs: runs from `load_runs`.
        path: the PNG (or SVG) to write; the other of the two is written beside it with the same name.
        metric: the metric on the y axis, e.g. `test/f1_macro`.
        x: a numeric config key; runs without it that are non-private go to the ∞ point, others are left out.
        by: keys that define the lines (default: those `compare` would group by), `x` and privacy.name aside.
        mix_data: as for `compare_runs`.

    Returns:
        The PNG and SVG paths written.

    Raises:
        TwinIDSError: if `path` is neither .png nor .svg, no run has `x`, `x` has non-numeric values, nothing is
            left to draw, or the files cannot be written.
    """
    written = plot_paths(path)
    key_column(runs, x, option="--x")
    series_keys = [key for key in (by or default_keys(runs)) if key not in (x, PRIVACY_KEY)]
    privacy = [PRIVACY_KEY] if f"params.{PRIVACY_KEY.replace('.', '/')}" in runs.columns else []
    comparison = compare_runs(runs, by=[*series_keys, *privacy, x], metrics=[metric], mix_data=mix_data)
    table = comparison.table
    drawn = [_x_value(row, x) is not None and not math.isnan(row[f"{metric} mean"]) for _, row in table.iterrows()]
    table = table[drawn]
    if table.empty:
        raise TwinIDSError(f"nothing to plot: no run has both {x} (or is non-private) and {metric}")
    constant = [key for key in series_keys if table[key].map(shown_value).nunique() == 1]
    varying = [key for key in series_keys if key not in constant]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for _, row in table.iterrows():
        label = ", ".join(shown_value(row[key]) for key in varying) or metric
        if row["differs"]:
            label += f" ({row['differs']})"
        std = row[f"{metric} std"]
        point = (_x_value(row, x), row[f"{metric} mean"], 0.0 if math.isnan(std) else std)
        lines.setdefault(label, []).append(point)
    title = f"{metric} vs {x} (mean ± std over seeds)"
    if constant:
        title += "\n" + ", ".join(f"{key}={shown_value(table[key].iloc[0])}" for key in constant)
    from matplotlib import rc_context

    figure = _draw(lines, x, metric, title, bounded=is_unit_interval(metric))
    try:
        written[0].parent.mkdir(parents=True, exist_ok=True)
        with rc_context({"svg.fonttype": "none"}):  # SVG text stays text: editable and searchable in a paper
            for target in written:
                figure.savefig(target, dpi=150, bbox_inches="tight")
    except OSError as error:
        raise TwinIDSError(f"cannot write the plot {written[0]}: {error.strerror}") from error
    return written


def plot_paths(path: Path) -> list[Path]:
    """The PNG and the SVG a plot named `path` is written to.

    Raises:
        TwinIDSError: if `path` ends in neither .png nor .svg, as `--out` refuses an extension it cannot write.
    """
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise TwinIDSError(
            f"cannot draw a plot into {path}: a plot is written as PNG and SVG, so name it with .png or .svg "
            f"(e.g. {path.with_suffix('.png').name})"
        )
    return [path.with_suffix(".png"), path.with_suffix(".svg")]


def is_unit_interval(metric: str) -> bool:
    """Whether a metric is a score in [0, 1]: `<stage>/<name>` with a name of UNIT_INTERVAL_METRICS."""
    name = metric.split("/", 1)[-1]
    return name in UNIT_INTERVAL_METRICS or name.startswith(UNIT_INTERVAL_PREFIXES)


def error_bar(mean: float, std: float, bounded: bool) -> tuple[float, float]:
    """(below, above) the mean an error bar of ± std reaches; kept inside [0, 1] for a bounded score."""
    if not bounded:
        return std, std
    return min(std, max(mean, 0.0)), min(std, max(1.0 - mean, 0.0))


def _x_value(row: pd.Series, x: str) -> float | None:
    """The x position of a row: its key value, ∞ for a non-private row without one, None to leave it out."""
    text = shown_value(row[x])
    if text == "—":
        return math.inf if PRIVACY_KEY in row and row[PRIVACY_KEY] == NON_PRIVATE else None
    try:
        return float(text)
    except ValueError:
        raise TwinIDSError(f"cannot plot against {x}: its value '{text}' is not a number; pick a numeric key") from None


def _draw(lines: dict[str, list[tuple[float, float, float]]], x: str, metric: str, title: str, bounded: bool):
    """A matplotlib Figure (no pyplot, no display needed): finite points joined, the ∞ point set apart, error
    bars kept inside [0, 1] when `bounded`."""
    from matplotlib.figure import Figure

    finite = sorted({px for points in lines.values() for px, _, _ in points if math.isfinite(px)})
    has_infinity = any(math.isinf(px) for points in lines.values() for px, _, _ in points)
    log_scale = bool(finite) and finite[0] > 0 and finite[-1] / finite[0] >= 10
    infinity_at = _infinity_position(finite, log_scale)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for index, (label, points) in enumerate(sorted(lines.items())):
        colour = f"C{index % 10}"
        shown = sorted((px, mean, std) for px, mean, std in points if math.isfinite(px))
        if shown:
            xs, means, stds = zip(*shown, strict=True)
            bars = _yerr(means, stds, bounded)
            axes.errorbar(xs, means, yerr=bars, color=colour, marker="o", capsize=3, label=label)
        for _, mean, std in (p for p in points if math.isinf(p[0])):
            bars = _yerr([mean], [std], bounded)
            axes.errorbar(
                [infinity_at], [mean], yerr=bars, color=colour, marker="s", capsize=3, label=None if shown else label
            )
    if log_scale:
        axes.set_xscale("log")
    ticks = list(finite) + ([infinity_at] if has_infinity else [])
    labels = [f"{value:g}" for value in finite] + ([INFINITY_LABEL] if has_infinity else [])
    axes.set_xticks(ticks, labels)
    axes.minorticks_off()
    if has_infinity and finite:
        gap = math.sqrt(finite[-1] * infinity_at) if log_scale else (finite[-1] + infinity_at) / 2
        axes.axvline(gap, color="0.7", linestyle=":", linewidth=1)
    axes.set_xlabel(x)
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _yerr(means: Sequence[float], stds: Sequence[float], bounded: bool) -> list[list[float]]:
    """Matplotlib's asymmetric `yerr`: a row of lengths below the means, a row above."""
    bars = [error_bar(mean, std, bounded) for mean, std in zip(means, stds, strict=True)]
    return [[below for below, _ in bars], [above for _, above in bars]]


def _infinity_position(finite: list[float], log_scale: bool) -> float:
    """Where ∞ is drawn: a step beyond the largest finite value (a factor on a log axis)."""
    if not finite:
        return 1.0
    if log_scale:
        return finite[-1] * 3
    span = finite[-1] - finite[0]
    return finite[-1] + (span * 0.25 if span else 1.0)
