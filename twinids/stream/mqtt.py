"""MQTT for streams: broker addresses, connected paho clients that retry a broker that went away, acknowledgements.

One place for what the stream's source (`MqttReadings`), its alert sink (`MqttSink`) and the simulator's publisher
(`publish_frame`) do alike with paho-mqtt (callback API version 2).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from twinids.errors import TwinIDSError

MQTT_SCHEME = "mqtt"
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30  # back-off between attempts to reach a broker that went away


@dataclass(frozen=True)
class MqttAddress:
    """A broker and topic: mqtt://host:port/topic (port 1883 unless given)."""

    host: str
    port: int
    topic: str

    @classmethod
    def parse(cls, url: str, what: str) -> MqttAddress:
        """Read `mqtt://host[:port]/topic`, refusing anything else in one line naming `what`."""
        parsed = urlparse(url)
        topic = parsed.path.lstrip("/")
        try:
            port = parsed.port or 1883
        except ValueError:
            port = -1
        if parsed.scheme != MQTT_SCHEME or not parsed.hostname or not topic or not 0 < port < 65536:
            raise TwinIDSError(f"{what} must be mqtt://host[:port]/topic, e.g. mqtt://127.0.0.1:1883/twin; got {url!r}")
        return cls(parsed.hostname, port, topic)


def connect(address: MqttAddress, **callbacks: Any) -> Any:
    """A paho client connected to the broker, its network loop running, set to reconnect with back-off.

    `callbacks` are paho's (`on_connect=...`, `on_message=...`), set before connecting.

    Raises:
        TwinIDSError: the broker cannot be reached.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    for name, callback in callbacks.items():
        setattr(client, name, callback)
    try:
        client.connect(address.host, address.port)
    except OSError as error:
        raise TwinIDSError(f"cannot reach the MQTT broker at {address.host}:{address.port}: {error}") from None
    client.loop_start()
    return client


def unacknowledged(published: Sequence[Any], timeout_s: float) -> int:
    """How many QoS 1 messages (paho's MQTTMessageInfo) the broker has not acknowledged after waiting `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while any(not info.is_published() for info in published) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sum(not info.is_published() for info in published)


def leave(client: Any) -> None:
    """Disconnect from the broker and stop the network loop."""
    client.disconnect()
    client.loop_stop()
