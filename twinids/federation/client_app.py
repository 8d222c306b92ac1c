"""The ClientApp each client runs (one per SuperNode): it trains and tests the global model on its own data.

Every message carries the federation's resolved config (`twinids-config`); the node's `partition-id` (Flower's
node config) picks which client of `federation.clients` it is. Nothing but weights and metrics leaves the client.
"""

from __future__ import annotations

from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from twinids.federation.messages import CLIENT_KEY, CLIPPING_NORM_KEY, CONFIG_KEY, DP_STATE_KEY

_LOCAL: dict[tuple[str, str], Any] = {}  # (config, client) -> LocalDetector, kept while this process serves the run

app = ClientApp()


def clip_when_asked(message: Message, context: Context, call_next: Any) -> Message:
    """Flower's client-side fixed clipping, for the rounds whose config asks for it (client_dp.clipping=client)."""
    config = message.content.config_records.get("config")
    if config is not None and CLIPPING_NORM_KEY in config:
        return fixedclipping_mod(message, context, call_next)
    return call_next(message, context)


@app.query()
def describe(message: Message, context: Context) -> Message:
    """The client's name, features, classes and window counts, and its freshly built net (the global start)."""
    name, local = _local(message, context)
    counts = {f"windows-{split}": len(starts) for split, starts in local.data.starts.items()}
    info = ConfigRecord(
        {
            CLIENT_KEY: name,
            "features": local.feature_names,
            "classes": [str(c) for c in local.data.class_names],
            **counts,
        }
    )
    return Message(RecordDict({"arrays": ArrayRecord(local.weights()), "info": info}), reply_to=message)


@app.train(mods=[clip_when_asked])
def train(message: Message, context: Context) -> Message:
    """Local epochs from the global weights; replies with the new weights and what the round cost."""
    _, local = _local(message, context)
    config = message.content["config"]
    if DP_STATE_KEY in context.state.config_records:
        local.restore_privacy_state(str(context.state.config_records[DP_STATE_KEY]["state"]))
    weights = message.content["arrays"].to_torch_state_dict()
    metrics = local.train_round(
        weights, int(config["local-epochs"]), float(config.get("proximal-mu", 0.0)), int(config["server-round"])
    )
    state = local.privacy_state()
    if state is not None:
        context.state.config_records[DP_STATE_KEY] = ConfigRecord({"state": state})
    # Under client-level DP every client weighs the same (the noise is calibrated for a mean of equal shares).
    examples = 1 if bool(config["uniform-weights"]) else len(local.data.starts["train"])
    reply = MetricRecord({**metrics, "num-examples": examples, "partition-id": _partition(context)})
    return Message(RecordDict({"arrays": ArrayRecord(local.weights()), "metrics": reply}), reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """The global weights' test metrics on this client's windows, with the confusion matrix (pooled by the server)."""
    _, local = _local(message, context)
    metrics, confusion = local.evaluate(message.content["arrays"].to_torch_state_dict())
    reply = MetricRecord(
        {
            "num-examples": int(confusion.sum()),
            "partition-id": _partition(context),
            "test_f1_macro": metrics.get("test/f1_macro", float("nan")),
            "confusion": [int(v) for v in confusion.ravel()],
        }
    )
    return Message(RecordDict({"metrics": reply}), reply_to=message)


def _partition(context: Context) -> int:
    partition = context.node_config.get("partition-id")
    if partition is None:
        raise ValueError("this SuperNode has no partition-id in its node config (--node-config 'partition-id=0')")
    return int(partition)


def _local(message: Message, context: Context) -> tuple[str, Any]:
    """The client this node is, and its LocalDetector (built once per process and config)."""
    from omegaconf import OmegaConf

    from twinids.federation.clients import client_config, client_names
    from twinids.federation.local_training import LocalDetector
    from twinids.federation.settings import FederationSettings

    text = str(message.content["config"][CONFIG_KEY])
    cfg = OmegaConf.create(text)
    settings = FederationSettings.from_config(cfg.federation)
    names = client_names(settings)
    partition = _partition(context)
    if not 0 <= partition < len(names):
        raise ValueError(f"partition-id {partition} is outside the federation's {len(names)} clients")
    name = names[partition]
    key = (text, name)
    if key not in _LOCAL:
        _LOCAL.clear()  # one run at a time per process
        _LOCAL[key] = LocalDetector(client_config(cfg, settings, name))
    return name, _LOCAL[key]
