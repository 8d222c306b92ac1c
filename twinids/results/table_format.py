"""Write a comparison as a rich table, Markdown, CSV or LaTeX: `mean ± std` cells, run counts, what sets rows
of the same key values apart (`differs`), provenance notes."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from twinids.errors import TwinIDSError
from twinids.results.compare import Comparison, shown_value

FORMATS = {"md": ".md", "csv": ".csv", "latex": ".tex"}
UNSET = "—"
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "†": r"\textdagger{}",
    "‡": r"\textdaggerdbl{}",
    "—": "--",
    "±": r"$\pm$",
}


def format_for(path: Path, fmt: str | None) -> str:
    """The output format: `fmt` if given, else the one the file extension names (.md, .csv, .tex).

    Raises:
        TwinIDSError: for an unknown format or extension.
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise TwinIDSError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")
        return fmt
    for name, suffix in FORMATS.items():
        if path.suffix == suffix:
            return name
    raise TwinIDSError(f"cannot tell the format of {path} from its extension; pass --format md, csv or latex")


def render(comparison: Comparison, fmt: str) -> str:
    """The comparison as text in `fmt` (md, csv or latex)."""
    if fmt == "csv":
        return _csv(comparison)
    header, rows = _cells(comparison)
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        notes = comparison.footnotes()
        return "\n".join([*lines, "", *notes] if notes else lines) + "\n"
    if fmt == "latex":
        return _latex(comparison, header, rows)
    raise TwinIDSError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")


def write_table(comparison: Comparison, path: Path, fmt: str | None = None) -> None:
    """Write the comparison to `path`, in `fmt` or the format its extension names.

    Raises:
        TwinIDSError: for an unknown format, or a file that cannot be written.
    """
    text = render(comparison, format_for(path, fmt))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as error:
        raise TwinIDSError(f"cannot write {path}: {error.strerror}") from error


def print_table(comparison: Comparison, title: str) -> None:
    """Print the comparison as a rich table with its footnotes below."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    header, rows = _cells(comparison)
    table = Table(title=title)
    for index, name in enumerate(header):
        is_key = index < len(comparison.by) or name in ("differs", "notes")
        table.add_column(name, justify="left" if is_key else "right", no_wrap=not is_key)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # piped or captured: print the whole table rather than squeeze it into 80 columns
        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console = Console(width=max(console.width, needed))
    console.print(table)
    for note in comparison.footnotes():
        console.print(note, soft_wrap=True, highlight=False)


def _cells(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and text cells: key values, what a row differs in (when rows share key values), run count,
    `mean ± std` per metric (with its n when some runs lack it), and a notes column when any row is marked."""
    table = comparison.table
    marked = bool(table["marks"].astype(bool).any())
    split = bool(table["differs"].astype(bool).any())
    header = [*comparison.by, *(["differs"] if split else []), "runs", *comparison.metrics]
    header += ["notes"] if marked else []
    rows = []
    for _, row in table.iterrows():
        cells = [shown_value(row[key]) for key in comparison.by]
        cells += [row["differs"]] if split else []
        cells.append(str(row["runs"]))
        cells += [_score(row, metric) for metric in comparison.metrics]
        if marked:
            cells.append(row["marks"])
        rows.append(cells)
    return header, rows


def _score(row: object, metric: str) -> str:
    mean, std, n = row[f"{metric} mean"], row[f"{metric} std"], row[f"{metric} n"]  # type: ignore[index]
    if n == 0 or math.isnan(mean):
        return UNSET
    text = f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"
    return text if n == row["runs"] else f"{text} (n={n})"  # type: ignore[index]


def _csv(comparison: Comparison) -> str:
    """Tidy numbers, one column per statistic, for reading back with pandas; `differs` always has its column."""
    columns = [*comparison.by, "differs", "runs"]
    for metric in comparison.metrics:
        columns += [f"{metric} mean", f"{metric} std", f"{metric} n"]
    columns.append("provenance")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for _, row in comparison.table.iterrows():
        writer.writerow([_csv_value(row[column]) for column in columns])
    return buffer.getvalue()


def _csv_value(value: object) -> object:
    """Unset keys and missing statistics are empty cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _latex(comparison: Comparison, header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular; footnotes follow as full-width rows under the table."""
    align = "".join(
        "l" if index < len(comparison.by) or name in ("differs", "notes") else "r" for index, name in enumerate(header)
    )
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(map(latex_text, header)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(latex_text, row)) + r" \\" for row in rows]
    lines.append(r"\bottomrule")
    lines += [
        rf"\multicolumn{{{len(header)}}}{{l}}{{\footnotesize {latex_text(note)}}} \\" for note in comparison.footnotes()
    ]
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def latex_text(text: str) -> str:
    """Text with LaTeX's special characters (and ±, †, ‡, —) escaped."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)
