"""The `federation` settings, checked before any run or process exists, each refusal naming its key."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from twinids.errors import TwinIDSError, require_integer, require_number

ENGINES = ("simulation", "deployment", "pooled")
STRATEGIES = ("fedavg", "fedprox")
CLIPPING_SIDES = ("server", "client")


@dataclass(frozen=True)
class ClientDP:
    """Client-level central DP: each client's update clipped to `clipping_norm`, Gaussian noise on their mean."""

    target_epsilon: float | None
    noise_multiplier: float | None
    clipping_norm: float
    clipping: str
    delta: float

    @property
    def enabled(self) -> bool:
        return self.target_epsilon is not None or self.noise_multiplier is not None


@dataclass(frozen=True)
class FederationSettings:
    """What `twinids federate` runs: engine, rounds, strategy, clients (name -> data changes) and client-level DP."""

    engine: str
    superlink: str
    rounds: int
    local_epochs: int
    fraction_train: float
    min_clients: int
    round_timeout_s: float
    strategy: str
    proximal_mu: float
    client_dp: ClientDP
    clients: dict[str, dict]

    @property
    def clients_per_round(self) -> int:
        """Clients sampled to train in each round (Flower's FedAvg: fraction of the clients, at least min_clients)."""
        return max(int(len(self.clients) * self.fraction_train), self.min_clients)

    @classmethod
    def from_config(cls, federation: DictConfig) -> FederationSettings:
        """Check `cfg.federation`; a client set to null is left out (as experiment=smoke does)."""
        engine = federation.get("engine")
        if engine not in ENGINES:
            raise TwinIDSError(f"federation.engine must be one of {list(ENGINES)}; got {engine!r}")
        strategy = federation.get("strategy")
        if strategy not in STRATEGIES:
            raise TwinIDSError(f"federation.strategy must be one of {list(STRATEGIES)}; got {strategy!r}")
        raw_clients = federation.get("clients")
        if not isinstance(raw_clients, DictConfig):
            raise TwinIDSError("federation.clients must map each client's name to its changes of data.*")
        clients = {
            str(name): OmegaConf.to_container(changes, resolve=True) or {}
            for name, changes in raw_clients.items()
            if changes is not None
        }
        for name, changes in clients.items():
            if not isinstance(changes, dict):
                raise TwinIDSError(f"federation.clients.{name} must be a mapping of data.* changes; got {changes!r}")
        min_clients = require_integer(federation.get("min_clients"), "federation.min_clients", 1)
        if len(clients) < 2:
            raise TwinIDSError(f"a federation needs at least 2 clients; federation.clients has {len(clients)}")
        if min_clients > len(clients):  # type: ignore[operator]
            raise TwinIDSError(
                f"federation.min_clients={min_clients} is more than the {len(clients)} clients in federation.clients"
            )
        settings = cls(
            engine=str(engine),
            superlink=str(federation.get("superlink")),
            rounds=require_integer(federation.get("rounds"), "federation.rounds", 1),  # type: ignore[arg-type]
            local_epochs=require_integer(  # type: ignore[arg-type]
                federation.get("local_epochs"), "federation.local_epochs", 1
            ),
            fraction_train=require_number(
                federation.get("fraction_train"), "federation.fraction_train", 0, 1, open_low=True
            ),
            min_clients=int(min_clients),  # type: ignore[arg-type]
            round_timeout_s=require_number(
                federation.get("round_timeout_s"), "federation.round_timeout_s", 0, open_low=True
            ),
            strategy=str(strategy),
            proximal_mu=require_number(federation.get("proximal_mu"), "federation.proximal_mu", 0),
            client_dp=_client_dp(federation.get("client_dp")),
            clients=clients,
        )
        if settings.engine == "pooled" and (settings.client_dp.enabled or settings.strategy != "fedavg"):
            key = "client_dp" if settings.client_dp.enabled else f"strategy={settings.strategy}"
            raise TwinIDSError(
                f"federation.engine=pooled trains one detector on the pooled data: there are no client updates for "
                f"federation.{key} to act on; drop it (privacy=dp gives the pooled run DP-SGD)"
            )
        if settings.client_dp.enabled and settings.client_dp.delta >= 1 / len(clients):
            raise TwinIDSError(
                f"federation.client_dp.delta={settings.client_dp.delta:g} is not below 1/clients = "
                f"{1 / len(clients):.3g}: a δ that large permits releasing one client's data outright"
            )
        return settings


def refuse_unsupported_jobs(cfg: DictConfig) -> None:
    """What a federation cannot train (yet), refused by name: one-class detectors (their thresholds are fitted on
    validation data after training), transfer from a pre-trained run, and the one-run canary audit."""
    if cfg.task != "classify":
        raise TwinIDSError(f"twinids federate trains supervised detectors (task=classify); got task={cfg.task}")
    if cfg.transfer.name != "none":
        raise TwinIDSError(f"twinids federate trains from scratch (transfer=none); got transfer={cfg.transfer.name}")
    audit = cfg.privacy.get("audit")
    if audit is not None and audit.get("canaries"):
        raise TwinIDSError("twinids federate does not run the canary audit; leave privacy.audit.canaries at 0")


def _client_dp(node: DictConfig | None) -> ClientDP:
    if node is None:
        raise TwinIDSError("federation.client_dp is missing; set its target_epsilon and noise_multiplier to null")
    target, noise = node.get("target_epsilon"), node.get("noise_multiplier")
    if target is not None and noise is not None:
        raise TwinIDSError(
            "set one of federation.client_dp.target_epsilon and federation.client_dp.noise_multiplier, not both"
        )
    clipping = node.get("clipping")
    if clipping not in CLIPPING_SIDES:
        raise TwinIDSError(f"federation.client_dp.clipping must be one of {list(CLIPPING_SIDES)}; got {clipping!r}")
    return ClientDP(
        target_epsilon=None
        if target is None
        else require_number(target, "federation.client_dp.target_epsilon", 0, open_low=True),
        noise_multiplier=None
        if noise is None
        else require_number(noise, "federation.client_dp.noise_multiplier", 0, open_low=True),
        clipping_norm=require_number(node.get("clipping_norm"), "federation.client_dp.clipping_norm", 0, open_low=True),
        clipping=str(clipping),
        delta=require_number(node.get("delta"), "federation.client_dp.delta", 0, 1, open_low=True, open_high=True),
    )
