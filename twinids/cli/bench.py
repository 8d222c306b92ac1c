"""`twinids bench`: speed and memory figures, each as a ratio against a baseline measured in the same run."""

from __future__ import annotations

from pathlib import Path

import typer


def bench_command(
    device: str = typer.Option("cpu", "--device", help="cpu, or cuda where there is a GPU."),
    threads: int = typer.Option(2, "--threads", help="torch intra-op threads."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
    write: Path = typer.Option(None, "--write", help="Also write the Markdown table here."),
    quick: bool = typer.Option(False, "--quick", help="Smaller inputs and fewer repeats: a smoke run, not a result."),
    only: str = typer.Option(None, "--only", help="Run only these cases, comma-separated (e.g. onnx,stream)."),
) -> None:
    """Measure DP step cost, training-loop overhead, inference rate, windowing and start-up time."""
    import json
    import os

    from twinids.bench.report import CASES, machine_description, markdown_table, run_all
    from twinids.errors import TwinIDSError

    cases = None if only is None else [case.strip() for case in only.split(",") if case.strip()]
    unknown = sorted(set(cases or ()) - set(CASES))
    if unknown or cases == []:
        raise TwinIDSError(f"--only {only}: unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    if device not in ("cpu", "cuda"):
        raise TwinIDSError(f"--device must be cpu or cuda, got '{device}'")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise TwinIDSError("--device cuda: no CUDA GPU is visible to torch on this machine")
    load_before = os.getloadavg()[0]
    results = run_all(device, threads, quick, cases)
    machine = machine_description(device, load_before)
    table = markdown_table(results, machine)
    if write is not None:
        write.parent.mkdir(parents=True, exist_ok=True)
        write.write_text("# twinids bench\n\n" + table)
    if as_json:
        typer.echo(json.dumps({**results, "machine": machine}, indent=2, sort_keys=True))
    else:
        typer.echo(table, nl=False)
