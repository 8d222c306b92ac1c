"""twinids's ClientApp, except that the client with partition-id 1 crashes in round 2's training (a test double
for a site that loses power mid-round; importable by name, so Ray's actors can load it)."""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from twinids.federation import client_app as twinids_app

CRASHING_PARTITION, CRASHING_ROUND = 1, 2

app = ClientApp()
app.query()(twinids_app.describe)
app.evaluate()(twinids_app.evaluate)


@app.train(mods=[twinids_app.clip_when_asked])
def train(message: Message, context: Context) -> Message:
    crashing = int(context.node_config["partition-id"]) == CRASHING_PARTITION
    if crashing and int(message.content["config"]["server-round"]) == CRASHING_ROUND:
        raise RuntimeError("the plant lost power mid-round")
    return twinids_app.train(message, context)
