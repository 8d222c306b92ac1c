"""Where `twinids detect` reads readings from: a CSV/Parquet file, the built-in simulator, or an MQTT topic.

Every source gives readings as plain dicts (column -> value: `device`, `time` and the features), each device's
readings in time order. A file is read as fast as possible unless `realtime` asks for its own pace; the simulator
runs with the settings given and is paced the same way; an MQTT topic delivers JSON objects as they are published.
`batches` groups them as `twinids detect` takes them: (arrival time, reading) pairs, as many as are there at once.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from twinids.data.frame import DEVICE, TIME
from twinids.errors import TwinIDSError
from twinids.stream.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S, MqttAddress, connect, leave

log = logging.getLogger("twinids.detect")
SIMULATOR = "simulator"
BATCH = 256  # readings scored together at most (those already there: a live stream waits for none)
Arrival = tuple[float, dict[str, Any]]  # (time.perf_counter() when the reading was there, the reading)


def batches(readings: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[Arrival]]:
    """Readings that are all there at once (a file, the simulator run ahead) in batches of `size`."""
    batch: list[Arrival] = []
    for reading in readings:
        batch.append((time.perf_counter(), reading))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def paced(readings: Iterator[dict[str, Any]], speed: float) -> Iterator[dict[str, Any]]:
    """The readings at their own pace (`speed` times faster): waits out the time between successive readings."""
    first_time = started = None
    for reading in readings:
        moment = float(reading[TIME])
        if first_time is None:
            first_time, started = moment, time.monotonic()
        wait = (moment - first_time) / speed - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        yield reading


def file_readings(path: Path, columns: list[str], realtime: bool) -> Iterator[dict[str, Any]]:
    """The rows of a CSV or Parquet file (one per reading; in time order across devices when `realtime`).

    Raises:
        TwinIDSError: a missing or unreadable file, or one that lacks the columns the detector reads.
    """
    import pandas as pd

    if not path.is_file():
        raise TwinIDSError(f"--source {path}: no such file")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as error:  # pandas raises many types for a file it cannot parse
        raise TwinIDSError(f"--source {path}: cannot read it ({type(error).__name__}: {error})") from None
    missing = [column for column in (DEVICE, TIME, *columns) if column not in frame.columns]
    if missing:
        raise TwinIDSError(f"--source {path} lacks the columns {missing}, which the detector reads")
    if realtime:
        frame = frame.sort_values(TIME, kind="stable")
    return iter(frame.to_dict("records"))


def simulator_readings(source_cfg: Any) -> Iterator[dict[str, Any]]:
    """The built-in simulator's readings, every device interleaved in time order, as it runs them."""
    from twinids.config import build

    frame = build(source_cfg, "the simulator")
    return iter(frame.sort_values([TIME, DEVICE], kind="stable").to_dict("records"))


class MqttReadings:
    """Readings published as JSON objects on an MQTT topic; a broker that goes away is retried with back-off.

    Messages that are not a JSON object are logged (one line each) and skipped. Iterate to receive; `close()` stops.
    """

    def __init__(self, address: MqttAddress) -> None:
        self.address = address
        self._messages: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self.connected = False
        self._client = connect(
            address,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_subscribe=self._on_subscribe,
            on_message=lambda client, userdata, message: self._messages.put((time.perf_counter(), message.payload)),
        )

    def __iter__(self) -> Iterator[list[Arrival]]:
        """Batches of the messages there at once (waiting for the first of each), as (arrival, reading) pairs."""
        while True:
            try:
                waiting = [self._messages.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(waiting) < BATCH:
                try:
                    waiting.append(self._messages.get_nowait())
                except queue.Empty:
                    break
            parsed = [(arrived, self._parse(payload)) for arrived, payload in waiting]
            batch = [(arrived, reading) for arrived, reading in parsed if reading is not None]
            if batch:
                yield batch

    def _parse(self, payload: bytes) -> dict[str, Any] | None:
        """A message as a reading, or None (logged) for one that is not a JSON object."""
        try:
            reading = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("skipped a message on %s that is not JSON: %r", self.address.topic, payload[:80])
            return None
        if not isinstance(reading, Mapping):
            log.warning("skipped a message on %s that is not a JSON object: %r", self.address.topic, payload[:80])
            return None
        return dict(reading)

    def close(self) -> None:
        """Stop the network loop and leave the broker."""
        leave(self._client)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.address.host, self.address.port, reason)
            return
        client.subscribe(self.address.topic, qos=1)
        self.connected = True

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        """The broker confirmed the subscription: from now on nothing published on the topic is missed."""
        if any(reason.is_failure for reason in reasons):
            log.warning("MQTT broker refused the subscription to %s: %s", self.address.topic, reasons)
            return
        log.info("subscribed to %s on %s:%s", self.address.topic, self.address.host, self.address.port)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.connected:
            log.warning(
                "lost the MQTT broker %s:%s (%s); retrying every %d-%d s",
                self.address.host,
                self.address.port,
                reason,
                RECONNECT_MIN_S,
                RECONNECT_MAX_S,
            )
        self.connected = False
