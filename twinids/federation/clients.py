"""Each client's own config: the run's config with that client's changes of `data.*` (its plant, its devices)."""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf, open_dict

from twinids.errors import TwinIDSError
from twinids.federation.settings import FederationSettings


def client_names(settings: FederationSettings) -> list[str]:
    """Client names in the order of `federation.clients`: client i is the SuperNode with partition-id i."""
    return list(settings.clients)


def client_config(cfg: DictConfig, settings: FederationSettings, name: str) -> DictConfig:
    """The config client `name` trains with: data.* changed as `federation.clients.<name>` says, and the trainer's
    epochs set to every round's local epochs (DP-SGD plans its noise for all the steps the client may take)."""
    if name not in settings.clients:
        raise TwinIDSError(f"no client {name!r} in federation.clients ({', '.join(settings.clients)})")
    client = copy.deepcopy(cfg)
    changes = OmegaConf.create(settings.clients[name])
    unknown = [key for key in changes if key not in client.data]
    if unknown:
        raise TwinIDSError(
            f"federation.clients.{name}.{unknown[0]} is not a data setting of data '{cfg.data.name}'; a client "
            "changes keys of data.* (e.g. source.seed)"
        )
    with open_dict(client):
        client.data = OmegaConf.merge(client.data, changes)
        client.trainer.max_epochs = settings.rounds * settings.local_epochs
    return client
