"""What each round did: who trained, who dropped, the global model's pooled test metrics, the ε spent.

`RecordedStrategy` wraps Flower's strategy (FedAvg/FedProx, inside a DP wrapper when client-level DP is on) and
hands each round's replies to a `RoundListener` (the tracker); aggregation stays Flower's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy


@dataclass
class ClientReply:
    """One client's answer in a round: its metrics, or the error it sent (a client that dropped out)."""

    client: str
    metrics: dict[str, float | list]
    error: str | None = None


@dataclass
class RoundRecord:
    """A round's train and evaluate replies, whether its aggregate was released, and what it cost."""

    number: int
    trained: list[ClientReply] = field(default_factory=list)
    evaluated: list[ClientReply] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)
    released: bool = False
    skipped_because: str | None = None

    @property
    def dropped(self) -> list[str]:
        """Clients asked in this round that answered with an error (a crash) or not at all (gone, timed out)."""
        replies = (*self.trained, *self.evaluated)
        answered = {r.client for r in replies if r.error is None}
        failed = {r.client for r in replies if r.error is not None}
        return sorted(failed | (self.asked - answered))


class RecordedStrategy(Strategy):
    """Delegates every step to `inner`; records replies, and refuses to release a client-level-DP aggregate of
    fewer clients than its noise was calibrated for (fewer clients would make each one's share larger)."""

    def __init__(
        self,
        inner: Strategy,
        node_names: Callable[[int], str | None],
        on_round: Callable[[RoundRecord], None],
        calibrated_clients: int | None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.node_names = node_names
        self.on_round = on_round
        self.calibrated_clients = calibrated_clients
        self.current: RoundRecord | None = None

    def summary(self) -> None:
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.current = RoundRecord(server_round)
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self.current.asked |= {self.node_names(m.metadata.dst_node_id) or "?" for m in messages}
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        record = self._round(server_round)
        record.trained = [reply for reply in map(self._reply, replies) if reply is not None]
        answered = sum(1 for r in record.trained if r.error is None)
        if self.calibrated_clients is not None and answered != self.calibrated_clients:
            record.skipped_because = (
                f"{answered} of {self.calibrated_clients} clients answered; client-level DP noise is calibrated for "
                f"{self.calibrated_clients}"
            )
            return None, None
        arrays, metrics = self.inner.aggregate_train(server_round, replies)
        record.released = arrays is not None
        if arrays is None and record.skipped_because is None:
            record.skipped_because = "no client update was aggregated (a client answered with an error)"
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        self._round(server_round).asked |= {self.node_names(m.metadata.dst_node_id) or "?" for m in messages}
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        record = self._round(server_round)
        record.evaluated = [reply for reply in map(self._reply, replies) if reply is not None]
        self.on_round(record)
        valid = [m for m in replies if not m.has_error()]
        return self.inner.aggregate_evaluate(server_round, valid) if valid else None

    def _round(self, server_round: int) -> RoundRecord:
        if self.current is None or self.current.number != server_round:
            self.current = RoundRecord(server_round)
        return self.current

    def _reply(self, message: Message) -> ClientReply | None:
        """The reply as a client's, or None for an error the SuperLink sent for a node that is gone (such a client
        is counted as asked and not answering)."""
        name = self.node_names(message.metadata.src_node_id)
        if name is None:
            return None
        if message.has_error():
            return ClientReply(name, {}, error=str(message.error.reason).strip().splitlines()[-1][:300])
        metrics = dict(message.content["metrics"])
        return ClientReply(name, metrics)


def pooled_macro_f1(replies: list[ClientReply], n_classes: int) -> tuple[float, np.ndarray]:
    """Macro-F1 of the global model over every client's test windows together, from their confusion matrices."""
    from sklearn.metrics import f1_score

    total = np.zeros((n_classes, n_classes), dtype=np.int64)
    for reply in replies:
        if reply.error is None:
            total += np.asarray(reply.metrics["confusion"], dtype=np.int64).reshape(n_classes, n_classes)
    truth = np.repeat(np.repeat(np.arange(n_classes), n_classes), total.ravel())
    predicted = np.repeat(np.tile(np.arange(n_classes), n_classes), total.ravel())
    if not len(truth):
        return float("nan"), total
    return float(f1_score(truth, predicted, average="macro", labels=np.arange(n_classes), zero_division=0)), total
