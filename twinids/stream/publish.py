"""Publish a telemetry frame reading by reading to an MQTT topic: the physical twins' side of a live stream."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from twinids.data.frame import DEVICE, TIME
from twinids.stream.mqtt import MqttAddress, connect, leave, unacknowledged
from twinids.stream.sources import paced


def publish_frame(
    frame: Any,
    url: str,
    *,
    roles: Mapping[str, Sequence[str]] | None = None,
    realtime: bool = False,
    speed: float = 1.0,
    timeout_s: float = 30.0,
) -> int:
    """Publish every row of `frame` as one JSON object (QoS 1), devices interleaved in time order; returns how many.

    With `roles` (role -> its features, as `data.views` lists them) each row is published once per role instead, on
    `<topic>/<role>`, holding only device, time and that role's features: each role's twin subscribes to its own
    topic and is never sent another role's readings. Waits until the broker acknowledged each message (at most
    `timeout_s` after the last one).

    Raises:
        TwinIDSError: an address that is not mqtt://host:port/topic, a broker it cannot reach, or messages the
            broker did not acknowledge in time.
    """
    from twinids.errors import TwinIDSError

    address = MqttAddress.parse(url, "--publish")
    missing = sorted({name for features in (roles or {}).values() for name in features} - set(frame.columns))
    if missing:
        raise TwinIDSError(f"data.views names {missing}, which the published data lacks")
    topics = {address.topic: None} if roles is None else {f"{address.topic}/{role}": f for role, f in roles.items()}
    client = connect(address)
    sent = []
    try:
        records = frame.sort_values([TIME, DEVICE], kind="stable").to_dict("records")
        for record in paced(iter(records), speed) if realtime else records:
            for topic, features in topics.items():
                kept = record if features is None else {key: record[key] for key in (DEVICE, TIME, *features)}
                message = {key: _plain(value) for key, value in kept.items()}
                sent.append(client.publish(topic, json.dumps(message, allow_nan=False), qos=1))
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
