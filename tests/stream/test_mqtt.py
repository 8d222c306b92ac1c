"""`twinids detect` over MQTT (issue 17 §1): a real mosquitto broker on 127.0.0.1, started by the tests.

The simulator publishes readings (`twinids data simulate --publish`), the detector subscribes and publishes its
decisions to another topic; malformed messages are skipped one line each; a broker that goes away is retried and
the stream goes on; a signal ends the command in one line; `--per-role` publishes each role's view on its own topic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twinids.training.train import train

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="Debian's mosquitto is missing (.ci/run installs it)"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Broker:
    """A mosquitto process on 127.0.0.1:port (anonymous, no persistence) that a test can stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        # mosquitto drops QoS 1 messages beyond 1000 queued for a subscriber that falls behind (a detector on a
        # loaded machine, under the simulator's burst): this broker queues them all, as README's advice for bursts
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def url(self, topic: str) -> str:
        return f"mqtt://127.0.0.1:{self.port}/{topic}"


@pytest.fixture
def broker(tmp_path):
    running = Broker(tmp_path)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def physics_run(tmp_path_factory, smoke_config):
    """A physics-residual run on the small simulator (it trains nothing): workdir, run id."""
    workdir = tmp_path_factory.mktemp("mqtt")
    overrides = ["model=physics_residual", "task=score"]
    return workdir, train(smoke_config(workdir, *overrides), overrides).run_id


class Subscriber:
    """A paho client collecting what is published on a topic."""

    def __init__(self, url: str) -> None:
        import paho.mqtt.client as mqtt

        from twinids.stream.mqtt import MqttAddress

        address = MqttAddress.parse(url, "test")
        self.messages: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda client, userdata, message: self.messages.append(json.loads(message.payload))
        self.client.connect(address.host, address.port)
        self.client.subscribe(address.topic, qos=1)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_raw(url: str, payloads: list[bytes]) -> None:
    import paho.mqtt.client as mqtt

    from twinids.stream.mqtt import MqttAddress

    address = MqttAddress.parse(url, "test")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(address.host, address.port)
    client.loop_start()
    for payload in payloads:
        client.publish(address.topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def twinids(workdir: Path, *args: str) -> subprocess.Popen:
    """The real `twinids` console script started in workdir (its own store), stdout and stderr captured."""
    executable = Path(sys.executable).with_name("twinids")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"}
    return subprocess.Popen(
        [str(executable), *args], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_line(stream, fragment: str, timeout: float = 120) -> list[str]:
    """Lines read from `stream` up to and including the first that holds `fragment`."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if fragment in line:
            return lines
    raise AssertionError(f"no line with {fragment!r} in: {lines}")


def simulate(workdir: Path, url: str, *overrides: str) -> None:
    done = twinids(workdir, "data", "simulate", "--publish", url, "data.source.n_steps=500", *overrides)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err


def test_the_simulator_publishes_and_the_detector_publishes_its_decisions(physics_run, broker):
    workdir, run_id = physics_run
    decisions = Subscriber(broker.url("alerts"))
    detector = twinids(
        workdir,
        "detect",
        run_id,
        "--source",
        broker.url("telemetry"),
        "--publish",
        broker.url("alerts"),
        "--every-window",
        "--max-readings",
        "2001",
    )
    wait_for_line(detector.stderr, "subscribed to telemetry")
    publish_raw(broker.url("telemetry"), [b"not json", b"[1, 2]", json.dumps({"device": "heated_room_1"}).encode()])
    simulate(workdir, broker.url("telemetry"), "seed=3")  # 6 devices x 500 steps, less lost packets
    out, err = detector.communicate(timeout=300)
    assert detector.returncode == 0, err
    assert out == ""  # decisions went to the topic, not stdout
    skipped = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 3, err  # not JSON, not an object, no time: one line each
    time.sleep(1)
    decisions.close()
    assert len(decisions.messages) > 1500
    assert {"device", "time", "score", "threshold", "alarm", "predicted"} == set(decisions.messages[0])


def test_a_broker_that_goes_away_is_retried_and_the_stream_goes_on(physics_run, broker):
    from twinids.config import compose
    from twinids.data.registry import load_frame
    from twinids.stream.publish import publish_frame

    workdir, run_id = physics_run
    frame = load_frame(compose(["data.source.n_steps=500", "seed=4"]).data)
    halfway = frame["time"].median()
    detector = twinids(
        workdir, "detect", run_id, "--source", broker.url("telemetry"), "--out", "alerts.jsonl", "--every-window"
    )
    wait_for_line(detector.stderr, "subscribed to telemetry")
    publish_frame(frame[frame["time"] <= halfway], broker.url("telemetry"))
    time.sleep(2)
    broker.stop()
    wait_for_line(detector.stderr, "lost the MQTT broker")
    before = len((workdir / "alerts.jsonl").read_text().splitlines())
    broker.start()
    wait_for_line(detector.stderr, "subscribed to telemetry", timeout=60)  # back, with its subscription
    publish_frame(frame[frame["time"] > halfway], broker.url("telemetry"))
    time.sleep(2)
    detector.send_signal(signal.SIGTERM)
    _, err = detector.communicate(timeout=60)
    assert detector.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "interrupted by SIGTERM"
    lines = (workdir / "alerts.jsonl").read_text().splitlines()
    assert before > 1000 and len(lines) > before + 1000  # what was written stays; the second half added to it
    assert all(json.loads(line)["device"] for line in lines)  # every line whole


def test_per_role_topics_carry_only_their_roles_columns(physics_run, broker, shipped_config):
    from twinids.data.registry import load_frame

    workdir, _ = physics_run
    cfg = shipped_config("data.source.n_steps=500")  # what `simulate` publishes
    readings, views = len(load_frame(cfg.data)), cfg.data.views
    subscribers = {role: Subscriber(broker.url(f"telemetry/{role}")) for role in views}
    every_role, bare = Subscriber(broker.url("telemetry/+")), Subscriber(broker.url("telemetry"))
    time.sleep(0.5)  # subscribed before the first reading
    simulate(workdir, broker.url("telemetry"), "--per-role")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(every_role.messages) < readings * len(views):
        time.sleep(0.2)
    time.sleep(0.5)  # anything published beyond the role topics has arrived
    for subscriber in [*subscribers.values(), every_role, bare]:
        subscriber.close()
    for role, subscriber in subscribers.items():
        assert len(subscriber.messages) == readings, role
        assert all(set(message) == {"device", "time", *views[role]} for message in subscriber.messages), role
    assert len(every_role.messages) == readings * len(views) and bare.messages == []  # no whole reading anywhere
