"""Printing results: rich tables of metrics, shared by the commands."""

from __future__ import annotations

from collections.abc import Mapping

from twinids.models.metric_names import METRIC_NAMES as METRIC_ORDER


def print_metrics(title: str, metrics: Mapping[str, float], details: Mapping[str, str]) -> None:
    """A table of test metrics followed by `key: value` lines (run id, checkpoint path)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    ordered = sorted(
        metrics,
        key=lambda k: (
            METRIC_ORDER.index(k.split("/")[-1]) if k.split("/")[-1] in METRIC_ORDER else len(METRIC_ORDER),
            k,
        ),
    )
    for name in ordered:
        table.add_row(name, f"{metrics[name]:.4f}")
    console = Console()
    console.print(table)
    for key, value in details.items():
        console.print(f"{key}: {value}", soft_wrap=True, highlight=False)
