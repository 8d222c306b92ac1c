"""Signals that end a command (Ctrl-C, SIGTERM, SIGHUP) become one exception, so every way out is handled alike.

The exception is not a KeyboardInterrupt on purpose: Lightning turns a KeyboardInterrupt into
`sys.exit(1)` and its own SIGTERM handling into a silent exit, while any other exception passes through
its trainer unchanged. The tracking layer ends the run KILLED when it sees it, and the CLI prints one line
and exits with 128 + the signal number, as shells expect.
"""

from __future__ import annotations

import signal
from types import FrameType

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class JobInterrupted(BaseException):
    """A command was asked to stop by a signal; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise JobInterrupted(signum)


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise JobInterrupted in the main thread."""
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _raise_interrupted)
