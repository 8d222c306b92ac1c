"""The package's one user-facing error type: the CLI prints its message in one line and exits non-zero."""

from __future__ import annotations


class TwinIDSError(Exception):
    """A mistake the user can fix: the message says what was wrong, where, and what to do."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
