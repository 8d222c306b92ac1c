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
    """The config client `name` trains with: data.* changed as `federation.clients.<name>` says, trained in
    rounds (`trained_in_rounds`)."""
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
    return trained_in_rounds(client, settings)


def trained_in_rounds(cfg: DictConfig, settings: FederationSettings) -> DictConfig:
    """`cfg` for a detector trained round by round: the trainer's epochs are every round's local epochs (DP-SGD
    plans its noise for all the steps it may take), and there is no early stopping or checkpoint selection (a
    fixed number of epochs per round, no checkpoint: the rounds decide what is released). Changes `cfg`."""
    with open_dict(cfg):
        cfg.trainer.max_epochs = settings.rounds * settings.local_epochs
        cfg.callbacks.early_stopping = None
        cfg.callbacks.select = "best"  # read by nothing here; "last" would check early stopping against epochs
    return cfg
