"""Publish a telemetry frame reading by reading to an MQTT topic: the physical twins' side of a live stream."""

from __future__ import annotations

import json
import math
from typing import Any

from twinids.data.frame import DEVICE, TIME
from twinids.stream.mqtt import MqttAddress, connect, leave, unacknowledged
from twinids.stream.sources import paced


def publish_frame(frame: Any, url: str, *, realtime: bool = False, speed: float = 1.0, timeout_s: float = 30.0) -> int:
    """Publish every row of `frame` as one JSON object (QoS 1), devices interleaved in time order; returns how many.

    Waits until the broker acknowledged each message (at most `timeout_s` after the last one).

    Raises:
        TwinIDSError: an address that is not mqtt://host:port/topic, a broker it cannot reach, or messages the
            broker did not acknowledge in time.
    """
    from twinids.errors import TwinIDSError

    address = MqttAddress.parse(url, "--publish")
    client = connect(address)
    sent = []
    try:
        records = frame.sort_values([TIME, DEVICE], kind="stable").to_dict("records")
        for record in paced(iter(records), speed) if realtime else records:
            message = {key: _plain(value) for key, value in record.items()}
            sent.append(client.publish(address.topic, json.dumps(message, allow_nan=False), qos=1))
        left = unacknowledged(sent, timeout_s)
        if left:
            raise TwinIDSError(f"the broker acknowledged {len(sent) - left} of {len(sent)} readings in {timeout_s:g} s")
    finally:
        leave(client)
    return len(sent)


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python numbers, NaN as null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
