"""Where `twinids detect` writes its alerts, one JSON object per line: stdout, a file, or an MQTT topic.

Each alert is written as soon as it is decided: flushed to stdout or the file, published with QoS 1 to a topic
(paho keeps what it could not send while the broker is away and sends it once it is back).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from twinids.errors import TwinIDSError
from twinids.stream.mqtt import MqttAddress, connect, leave, unacknowledged

log = logging.getLogger("twinids.detect")


class ReaderGone(Exception):
    """The reader of stdout went away (e.g. `| head`): the stream ends quietly, as Unix tools do."""


class AlertSink(Protocol):
    """Takes one alert line at a time."""

    def write(self, line: str) -> None:
        """Write one JSON line (no newline in it)."""
        ...

    def close(self) -> None:
        """Flush and release what the sink holds."""
        ...


class StreamSink:
    """Lines to a text stream (stdout by default), flushed one by one."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def write(self, line: str) -> None:
        """Write and flush one line."""
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            _silence_stdout()
            raise ReaderGone from None

    def close(self) -> None:
        """Flush (the stream stays open: it is not ours)."""
        try:
            self.stream.flush()
        except BrokenPipeError:
            _silence_stdout()


class FileSink(StreamSink):
    """Lines appended to a file (alerts already in it are kept)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            super().__init__(path.open("a", encoding="utf-8"))
        except OSError as error:
            raise TwinIDSError(f"--out {path}: cannot write there ({error.strerror})") from None

    def close(self) -> None:
        """Flush and close the file."""
        self.stream.close()


class MqttSink:
    """Lines published to an MQTT topic with QoS 1."""

    def __init__(self, address: MqttAddress) -> None:
        self.address = address
        self._client = connect(address)
        self._unacknowledged: list[Any] = []

    def write(self, line: str) -> None:
        """Publish one line (queued by paho while the broker is away)."""
        self._unacknowledged = [info for info in self._unacknowledged if not info.is_published()]
        self._unacknowledged.append(self._client.publish(self.address.topic, line, qos=1))

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait up to `timeout_s` for the broker to acknowledge what is still queued, then leave it."""
        left = unacknowledged(self._unacknowledged, timeout_s)
        if left:
            log.warning("%d alerts were not acknowledged by the MQTT broker before closing", left)
        leave(self._client)


def open_sinks(out: Path | None, publish: str | None) -> list[Any]:
    """The sinks asked for: the file and/or the topic; stdout when neither is given."""
    sinks: list[Any] = []
    if out is not None:
        sinks.append(FileSink(out))
    if publish is not None:
        sinks.append(MqttSink(MqttAddress.parse(publish, "--publish")))
    return sinks or [StreamSink()]


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's own flush at exit does not fail on the closed pipe again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
