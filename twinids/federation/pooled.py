"""`federation.engine=pooled`: the centralised baseline of a federation. The clients' data pooled in one place (their
devices side by side, one encoder fitted on the pooled training rows), one detector trained on it for as many epochs
as a client trains in all rounds, and tested on each client's own test windows as the federated model is.

Under privacy=dp this is centralised DP-SGD: one accountant for the pooled data, its ε logged as privacy/epsilon.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from twinids.federation.rounds import ClientReply, RoundRecord
from twinids.federation.settings import FederationSettings

POOLED = "pooled"


def pooled_windows(cfg: DictConfig, settings: FederationSettings) -> tuple[Any, dict[str, Any]]:
    """The pooled windows (each client's devices renamed `<client>/<device>`), and each client's own windows encoded
    with the pooled encoder (the same rows and splits as the client's; only the scaling is the pool's)."""
    import dataclasses

    import pandas as pd

    from twinids.data.frame import DEVICE, SOURCE_FILES
    from twinids.data.prepare import WindowSettings, prepare_windows
    from twinids.data.registry import build_windows, load_frame
    from twinids.federation.clients import client_config

    configs = {name: client_config(cfg, settings, name) for name in settings.clients}
    frames, files = [], []
    for name, client in configs.items():
        frame = load_frame(client.data)
        files += frame.attrs.get(SOURCE_FILES, [])
        frame[DEVICE] = name + "/" + frame[DEVICE].astype(str)
        frames.append(frame)
    pooled = pd.concat(frames, ignore_index=True)
    data = prepare_windows(pooled, WindowSettings.from_config(cfg.data))
    data = dataclasses.replace(data, source_files=tuple(sorted(set(files))))
    per_client = {name: build_windows(client.data, encoder=data.encoder) for name, client in configs.items()}
    return data, per_client


def run_pooled_engine(cfg: DictConfig, tracker: Any, settings: FederationSettings) -> dict[str, Any]:
    """Train on the pooled data, `local_epochs` per round; after each round test on every client's windows."""
    import copy

    from twinids.federation.clients import trained_in_rounds
    from twinids.federation.local_training import LocalDetector
    from twinids.federation.server import Federation

    data, per_client = pooled_windows(cfg, settings)
    local = LocalDetector(trained_in_rounds(copy.deepcopy(cfg), settings), data)
    windows = {name: {split: len(starts) for split, starts in d.starts.items()} for name, d in per_client.items()}
    tracker.start(Federation({}, list(data.feature_names), list(data.class_names), windows), None)
    weights = local.weights()
    for number in range(1, settings.rounds + 1):
        trained = local.train_round(weights, settings.local_epochs, 0.0, number)
        weights = local.weights()
        evaluated = []
        for name, client_data in per_client.items():
            metrics, confusion = local.evaluate(weights, client_data)
            values = {
                "test_f1_macro": metrics.get("test/f1_macro", float("nan")),
                "confusion": confusion.ravel().tolist(),
            }
            evaluated.append(ClientReply(name, values))
        record = RoundRecord(number, [ClientReply(POOLED, trained)], evaluated, {POOLED, *per_client}, released=True)
        tracker.round(record)
    return weights
