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


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type when it has none.

    Library errors often span many lines; a one-line refusal quotes only what says what went wrong.
    """
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def require_integer(value: object, key: str, minimum: int | None = None, *, optional: bool = False) -> int | None:
    """`value` as an int, refusing booleans (YAML's `true` is an int to Python), other types and values below
    `minimum`; with `optional`, None passes through. The message names the config `key` the user set."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        allowed = "null or an integer" if optional else "an integer"
        raise TwinIDSError(f"{key} must be {allowed}{bound}; got {value!r}")
    return value


def require_number(
    value: object,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """`value` as a float within [low, high] (ends open where said), refusing booleans and non-numbers."""
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        left = "(" if open_low else "["
        right = ")" if open_high else "]"
        span = f" in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise TwinIDSError(f"{key} must be a number{span if (low, high) != (None, None) else ''}; got {value!r}")
    return float(value)  # type: ignore[arg-type]
