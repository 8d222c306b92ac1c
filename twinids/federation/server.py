"""The server's side of a federation: find the clients, agree on one net, run Flower's strategy for the rounds.

`serve` is what the ServerApp's main does, in the simulation engine (in this process) and in the deployment
engine (in the SuperLink's ServerApp process) alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedProx,
    Strategy,
)
from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError
from twinids.federation.accounting import calibrate_noise
from twinids.federation.messages import CLIENT_KEY, CONFIG_KEY
from twinids.federation.rounds import RecordedStrategy, RoundRecord
from twinids.federation.settings import FederationSettings

NODES_WAIT_S = 120.0


@dataclass(frozen=True)
class Federation:
    """Who takes part: each node's client name, the shared features and classes, the clients' window counts."""

    names: dict[int, str]
    features: list[str]
    classes: list[str]
    windows: dict[str, dict[str, int]]


def client_noise(settings: FederationSettings) -> float | None:
    """σ of client-level DP (calibrated with Opacus's accountant when a target ε is set), or None when it is off.

    The clients are sampled by Flower (a fixed number per round, not Poisson), so ε is accounted without
    amplification by sampling: sample rate 1, one release per aggregated round.
    """
    dp = settings.client_dp
    if not dp.enabled:
        return None
    if dp.noise_multiplier is not None:
        return dp.noise_multiplier
    return calibrate_noise(dp.target_epsilon, dp.delta, 1.0, settings.rounds)  # type: ignore[arg-type]


def build_strategy(settings: FederationSettings, noise: float | None) -> Strategy:
    """Flower's FedAvg or FedProx, wrapped in its fixed-clipping DP strategy when client-level DP is on."""
    sizes = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": 1.0,
        "min_train_nodes": settings.min_clients,
        "min_evaluate_nodes": settings.min_clients,
        "min_available_nodes": settings.min_clients,
    }
    strategy: Strategy = (
        FedProx(proximal_mu=settings.proximal_mu, **sizes) if settings.strategy == "fedprox" else FedAvg(**sizes)
    )
    if noise is None:
        return strategy
    wrapper = (
        DifferentialPrivacyServerSideFixedClipping
        if settings.client_dp.clipping == "server"
        else DifferentialPrivacyClientSideFixedClipping
    )
    return wrapper(strategy, noise, settings.client_dp.clipping_norm, settings.clients_per_round)


def discover(grid: Grid, cfg: DictConfig, settings: FederationSettings) -> tuple[Federation, object]:
    """Wait for every client's node, ask each who it is; refuse clients whose windows differ in features or classes.

    Returns the federation and the global model's first weights (every client builds the same net from the seed).
    """
    expected = len(settings.clients)
    deadline = time.monotonic() + NODES_WAIT_S
    while len(list(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            found = len(list(grid.get_node_ids()))
            raise TwinIDSError(f"{found} of the federation's {expected} clients connected within {NODES_WAIT_S:.0f} s")
        time.sleep(0.5)
    config = ConfigRecord({CONFIG_KEY: OmegaConf.to_yaml(cfg, resolve=True)})
    messages = [
        Message(RecordDict({"config": config}), dst_node_id=node, message_type=MessageType.QUERY)
        for node in grid.get_node_ids()
    ]
    replies = list(grid.send_and_receive(messages, timeout=settings.round_timeout_s))
    errors = [m for m in replies if m.has_error()]
    if errors or len(replies) < expected:
        reason = str(errors[0].error.reason).strip().splitlines()[-1] if errors else "no answer"
        raise TwinIDSError(f"a client could not prepare its data and model: {reason}")
    names: dict[int, str] = {}
    windows: dict[str, dict[str, int]] = {}
    first = None
    for reply in sorted(replies, key=lambda m: str(m.content["info"][CLIENT_KEY])):
        info = reply.content["info"]
        name = str(info[CLIENT_KEY])
        names[reply.metadata.src_node_id] = name
        windows[name] = {k.removeprefix("windows-"): int(v) for k, v in info.items() if k.startswith("windows-")}
        if first is None:
            first = (name, list(info["features"]), list(info["classes"]), reply.content["arrays"])
        elif list(info["features"]) != first[1] or list(info["classes"]) != first[2]:
            raise TwinIDSError(
                f"clients {first[0]} and {name} encode different windows ({_difference(first, info, name)}): one "
                "global model needs the same features and classes on every client (e.g. data.drop_features for a "
                "column some clients lack)"
            )
    if sorted(names.values()) != sorted(settings.clients):
        raise TwinIDSError(f"the nodes are clients {sorted(names.values())}, not those of federation.clients")
    assert first is not None
    return Federation(names, first[1], first[2], windows), first[3]


def _difference(first: tuple, info: Any, name: str) -> str:
    """What differs between two clients' windows: features one has and the other lacks, or their classes."""
    mine, theirs = list(first[1]), list(info["features"])
    if mine != theirs:
        only_first = [f for f in mine if f not in theirs][:4]
        only_other = [f for f in theirs if f not in mine][:4]
        if not only_first and not only_other:
            return "the same features in another order"
        return f"{first[0]} alone reads {only_first}, {name} alone reads {only_other}"
    return f"classes {first[2]} against {list(info['classes'])}"


def serve(
    grid: Grid,
    cfg: DictConfig,
    on_start: Callable[[Federation, float | None], None],
    on_round: Callable[[RoundRecord], None],
) -> object:
    """Run the federation the config describes; returns Flower's Result (final arrays and per-round metrics)."""
    settings = FederationSettings.from_config(cfg.federation)
    noise = client_noise(settings)
    federation, initial = discover(grid, cfg, settings)
    on_start(federation, noise)
    strategy = RecordedStrategy(
        build_strategy(settings, noise),
        federation.names.get,
        on_round,
        settings.clients_per_round if noise is not None else None,
    )
    text = OmegaConf.to_yaml(cfg, resolve=True)
    train_config = ConfigRecord(
        {CONFIG_KEY: text, "local-epochs": settings.local_epochs, "uniform-weights": noise is not None}
    )
    return strategy.start(
        grid,
        initial,  # type: ignore[arg-type]
        num_rounds=settings.rounds,
        timeout=settings.round_timeout_s,
        train_config=train_config,
        evaluate_config=ConfigRecord({CONFIG_KEY: text}),
    )
