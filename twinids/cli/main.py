"""The `twinids` command: one sub-command group per module; user errors print one line, never a traceback."""

from __future__ import annotations

import os
import sys

import typer

from twinids.cli import attack, audit, bench, data, detect, evaluate, export, federate, respond, studies, train
from twinids.cpu_policy import apply_wait_policy
from twinids.errors import TwinIDSError
from twinids.interrupts import JobInterrupted, install_signal_handlers

app = typer.Typer(
    name="twinids",
    help="Train and evaluate intrusion detectors for IoT-enhanced digital twin networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: importing typer's rich formatter costs ~0.15 s per start
)
app.command("train", context_settings=train.CONTEXT)(train.train_command)
app.command("eval", context_settings=evaluate.CONTEXT)(evaluate.eval_command)
app.command("audit")(audit.audit_command)
app.command("attack", context_settings=evaluate.CONTEXT)(attack.attack_command)
app.command("detect", context_settings=detect.CONTEXT)(detect.detect_command)
app.command("respond", context_settings=evaluate.CONTEXT)(respond.respond_command)
app.command("export")(export.export_command)
app.command("federate", context_settings=federate.CONTEXT)(federate.federate_command)
app.add_typer(data.app, name="data")
app.command("sweep", context_settings=studies.SWEEP_CONTEXT)(studies.sweep_command)
app.command("tune", context_settings=studies.SWEEP_CONTEXT)(studies.tune_command)
app.command("reproduce")(studies.reproduce_command)
app.command("compare")(studies.compare_command)
app.command("dashboard")(studies.dashboard_command)
app.command("bench")(bench.bench_command)

DEBUG_ENV = "TWINIDS_DEBUG"


def _usage_error_types() -> tuple[type[Exception], ...]:
    """The exceptions a wrong command, option or argument raises under the typer installed (0.20 to 0.29)."""
    found: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):  # typer 0.26+: the errors of the click it bundles
        found.append(typer.TyperException)
    try:  # typer < 0.26 (the range Flower's pin selects) raises the `click` package's own errors
        from click import ClickException
    except ImportError:
        pass
    else:
        found.append(ClickException)
    return tuple(found)


USAGE_ERRORS = _usage_error_types()


@app.callback()
def root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    """twinids: detectors for digital twin networks (LSTM, hybrid, DP-SGD), tracked in MLflow."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


def main() -> None:
    """Console entry point: run the app and turn errors into one stderr line and a non-zero exit code.

    Ctrl-C, SIGTERM and SIGHUP end a command the same way: its MLflow run ends KILLED, one line is printed,
    and the exit code is 128 + the signal number.
    """
    install_signal_handlers()
    if _runs_torch(sys.argv[1:]):
        # OpenMP threads that spin while waiting are fastest alone and much slower beside a busy process: decided
        # now (cpu_policy), before the command imports torch and its OpenMP runtime reads the settings.
        apply_wait_policy()
    try:
        exit_code = app(standalone_mode=False)  # typer returns the code of Exit/Ctrl-C instead of exiting
        if isinstance(exit_code, int) and exit_code != 0:
            if exit_code == 130:
                print("interrupted", file=sys.stderr)
            sys.exit(exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except USAGE_ERRORS as error:
        # A wrong command, option or argument: click's usage error (typer < 0.26, which Flower's pin selects) or
        # the TyperException of the click that typer 0.26+ bundles.
        show = getattr(error, "show", None)
        if callable(show):
            show()  # click's usage line, "Try '... --help'" and the error
        else:
            print(f"error: {error.message}", file=sys.stderr)
        sys.exit(error.exit_code)
    except TwinIDSError as error:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except JobInterrupted as stop:
        print(f"interrupted by {stop}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # a bug, not a user mistake: still one line unless --debug
        if os.environ.get(DEBUG_ENV):
            raise
        message = f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)"
        print(message, file=sys.stderr)
        sys.exit(1)


def _runs_torch(arguments: list[str]) -> bool:
    """Whether the command line runs a command that loads torch (not `--help`, not `data list`)."""
    words = [a for a in arguments if not a.startswith("-")]
    helping = any(a in ("--help", "-h") for a in arguments)
    return bool(words) and words[0] in TORCH_COMMANDS and not helping


TORCH_COMMANDS = (
    "train",
    "eval",
    "audit",
    "attack",
    "detect",
    "respond",
    "export",
    "federate",
    "sweep",
    "tune",
    "reproduce",
    "bench",
    "data",
)


if __name__ == "__main__":
    main()
