"""Write a reproduced table as Markdown, CSV and LaTeX (and its figure), each saying where its numbers came from:
the git commit, the machine, the commands, and the MLflow run ids behind every row."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from twinids.errors import TwinIDSError
from twinids.results.compare import Comparison, row_label
from twinids.results.table_format import render
from twinids.results.table_spec import TableSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TableReport:
    """A table's comparison and everything needed to say how it was made."""

    spec: TableSpec
    comparison: Comparison
    runs: pd.DataFrame
    parent_run_ids: list[str]
    tracking_uri: str
    command: str
    overrides: list[str]  # added to every job of the table's sweeps
    data_root: str

    def run_ids_per_row(self) -> list[list[str]]:
        """For each row of the table, the ids of the runs averaged into it."""
        return [list(run_ids) for run_ids in self.comparison.table["run_ids"]]

    def provenance(self) -> list[str]:
        """Lines saying how the table was made: when, code, machine, commands, store and sweep parent runs."""
        from twinids.tracking.provenance import code_tags, machine_tags

        code = code_tags().get("twinids.code_version", "unknown")
        machine = ", ".join(f"{k.removeprefix('twinids.machine.')} {v}" for k, v in machine_tags().items())
        versions = sorted(set(self.runs.get("tags.twinids.code_version", [])) - {None})
        lines = [
            f"generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by `{self.command}`",
            f"code: twinids {code} (the runs: {', '.join(map(str, versions)) or 'unknown'})",
            f"machine: {machine}",
            f"data.root: {self.data_root} (datasets read from there; the simulator needs none)",
            f"tracking store: {self.tracking_uri}; sweep parent runs: {', '.join(self.parent_run_ids)}",
            "equivalent commands: " + "; ".join(f"`{c}`" for c in self.spec.sweep_commands(self.overrides)),
        ]
        if self.spec.follow_ups is not None:
            command, lists = self.spec.follow_ups
            listed = "; ".join(f"`twinids {command} RUN_ID {' '.join(overrides)}`" for overrides in lists)
            seeded = "; the attack's seed is the run's unless given" if command == "attack" else ""
            lines.append(
                f"then, on every run of those sweeps (RUN_ID{seeded}): {listed} (each value of a comma list one "
                f"run); the rows are the {command} runs"
            )
        return lines


def write_report(report: TableReport, out_dir: Path) -> list[Path]:
    """Write `<stem>.md`, `.csv`, `.tex` (and `.png`/`.svg` when the table has a figure); return the paths.

    Raises:
        TwinIDSError: if a file cannot be written.
    """
    stem = out_dir / report.spec.stem
    texts = {stem.with_suffix(".md"): _markdown(report), stem.with_suffix(".csv"): _csv(report)}
    texts[stem.with_suffix(".tex")] = _latex(report)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, text in texts.items():
            path.write_text(text)
    except OSError as error:
        raise TwinIDSError(f"cannot write the table into {out_dir}: {error.strerror}") from error
    written = list(texts)
    if report.spec.figure is not None:
        from twinids.results.comparison_plot import plot_metric

        figure = report.spec.figure
        keys = [key for key in report.comparison.by if key != figure["x"]]
        written += plot_metric(
            report.runs, stem.with_suffix(".png"), figure["metric"], figure["x"], keys, report.spec.mix_data
        )
    return written


def _markdown(report: TableReport) -> str:
    lines = [f"# {report.spec.caption}", "", render(report.comparison, "md").rstrip("\n"), ""]
    if report.spec.figure is not None:
        lines += [f"![{report.spec.figure['metric']}]({report.spec.stem}.png)", ""]
    lines += ["Cells: mean ± std over seeds; `runs`: how many runs each row averages.", "", "## Provenance", ""]
    lines += [f"- {line}" for line in report.provenance()]
    lines += ["", "Runs behind each row:", ""]
    for (_, row), run_ids in zip(report.comparison.table.iterrows(), report.run_ids_per_row(), strict=True):
        lines.append(f"- {row_label(report.comparison.by, row)}: {', '.join(run_ids)}")
    return "\n".join(lines) + "\n"


def _csv(report: TableReport) -> str:
    """Tidy numbers with a `run_ids` column; provenance as leading `#` lines (`pandas.read_csv(comment="#")`)."""
    import pandas as pd

    table = pd.read_csv(io.StringIO(render(report.comparison, "csv")), keep_default_na=False)
    table["run_ids"] = [" ".join(ids) for ids in report.run_ids_per_row()]
    header = "".join(f"# {line}\n" for line in [report.spec.caption, *report.provenance()])
    return header + table.to_csv(index=False, lineterminator="\n")


def _latex(report: TableReport) -> str:
    """A table float with the caption; provenance and run ids as comments."""
    from twinids.results.table_format import latex_text

    comments = [f"% {line}" for line in report.provenance()]
    comments += [
        f"% {row_label(report.comparison.by, row)}: {' '.join(ids)}"
        for (_, row), ids in zip(report.comparison.table.iterrows(), report.run_ids_per_row(), strict=True)
    ]
    body = render(report.comparison, "latex").rstrip("\n")
    caption = latex_text(report.spec.caption)
    floating = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", body, r"\end{table}"]
    return "\n".join([*comments, *floating]) + "\n"
