"""A federation in MLflow: one parent run (the global model, per round and final) and one child run per client."""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from typing import Any

import numpy as np
from omegaconf import DictConfig

from twinids.federation.rounds import RoundRecord, pooled_macro_f1
from twinids.federation.settings import FederationSettings

PARENT_TAG = "mlflow.parentRunId"
CLIENT_TAG = "twinids.federation.client"
DROPPED_TAG = "twinids.federation.dropped"
SKIPPED_TAG = "twinids.federation.skipped_rounds"


class FederationTracker:
    """Logs a federation's rounds: pooled and worst-client macro-F1 and ε on the parent, each client's own on its
    child run. Child runs live on `children` (an ExitStack), so they end with the parent's status."""

    def __init__(self, parent: Any, cfg: DictConfig, settings: FederationSettings, children: ExitStack) -> None:
        self.parent = parent
        self.cfg = cfg
        self.settings = settings
        self.children = children
        self.child_runs: dict[str, Any] = {}
        self.classes: list[str] = []
        self.client_accountant: Any = None
        self.rounds: list[RoundRecord] = []
        self.round_seconds: list[float] = []
        self.last: dict[str, float] = {}
        self.client_f1: dict[str, float] = {}  # client -> the global model's test macro-F1 on it, last round
        self.local_epsilon: dict[str, float] = {}
        self._round_began = time.perf_counter()

    def start(self, federation: Any, noise: float | None) -> None:
        """The clients are known: open their runs, log who holds what, start the client-level accountant."""
        from twinids.tracking.run import start_run

        self.classes = list(federation.classes)
        params: dict[str, Any] = {"federation.n_clients": len(federation.names)}
        if noise is not None:
            from twinids.federation.accounting import ClientLevelAccountant

            self.client_accountant = ClientLevelAccountant(noise, 1.0, self.settings.client_dp.delta)
            params["federation.client_dp.noise_multiplier_used"] = noise
        self.parent.log_params(params)
        for name in sorted(federation.windows):
            tags = {
                PARENT_TAG: self.parent.run_id,
                CLIENT_TAG: name,
                "twinids.job": "federate-client",
                "twinids.dataset": str(self.cfg.data.name),
                "twinids.model": str(self.cfg.model.name),
                "twinids.seed": str(self.cfg.seed),
            }
            run = self.children.enter_context(
                start_run(self.cfg.tracking.mlflow_experiment, self.cfg.tracking.uri, f"{name}", tags)
            )
            run.log_params({f"client.{k}": v for k, v in _flat(self.settings.clients[name]).items()})
            run.log_metrics({f"data/{split}_windows": float(n) for split, n in federation.windows[name].items()})
            self.child_runs[name] = run
        self._round_began = time.perf_counter()

    def round(self, record: RoundRecord) -> None:
        """One round ended: log it on the parent and on each client's run; print one line."""
        seconds = time.perf_counter() - self._round_began
        self.round_seconds.append(seconds)
        self.rounds.append(record)
        step = record.number
        f1, _ = pooled_macro_f1(record.evaluated, len(self.classes))
        per_client = {r.client: float(r.metrics["test_f1_macro"]) for r in record.evaluated if r.error is None}
        self.client_f1 = per_client  # the last round's: a client gone since then has no say in the mean
        metrics = {
            "test/f1_macro": f1,
            "federation/clients_trained": float(sum(r.error is None for r in record.trained)),
            "federation/clients_dropped": float(len(record.dropped)),
            "federation/released": float(record.released),
            "time/round_s": seconds,
        }
        if per_client:
            metrics["test/worst_client_f1_macro"] = min(per_client.values())
        if self.client_accountant is not None and record.released:
            self.client_accountant.release()
        if self.client_accountant is not None:
            metrics["privacy/epsilon"] = self.client_accountant.epsilon()
        for reply in record.trained:
            if reply.error is None and "epsilon" in reply.metrics:
                self.local_epsilon[reply.client] = float(reply.metrics["epsilon"])  # type: ignore[arg-type]
        if self.local_epsilon:
            central = self.settings.engine == "pooled"  # one accountant for the pooled data: centralised DP-SGD
            key = "privacy/epsilon" if central else "privacy/max_client_epsilon"
            metrics[key] = max(self.local_epsilon.values())
        self.parent.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)}, step=step)
        self.last = metrics
        for reply in (*record.trained, *record.evaluated):
            run = self.child_runs.get(reply.client)
            if run is None or reply.error is not None:
                continue
            values = {
                _CHILD_METRICS[key]: float(value)  # type: ignore[arg-type]
                for key, value in reply.metrics.items()
                if key in _CHILD_METRICS and not isinstance(value, list)
            }
            run.log_metrics(values, step=step)
        for name in record.dropped:
            run = self.child_runs.get(name)
            if run is not None:
                run.log_metrics({"federation/dropped": 1.0}, step=step)
        eps = metrics.get("privacy/epsilon", metrics.get("privacy/max_client_epsilon"))
        note = f", skipped: {record.skipped_because}" if record.skipped_because else ""
        dropped = f", dropped: {', '.join(record.dropped)}" if record.dropped else ""
        trained = (
            f"trained on the pooled data of {len(self.child_runs)} clients"
            if self.settings.engine == "pooled"
            else f"{int(metrics['federation/clients_trained'])} clients trained"
        )
        print(
            f"round {step}/{self.settings.rounds}: {trained}, "
            f"test macro-F1 {f1:.4f} (worst client {metrics.get('test/worst_client_f1_macro', float('nan')):.4f})"
            + (f", ε {eps:.3f}" if eps is not None else "")
            + f", {seconds:.1f} s{dropped}{note}",
            flush=True,
        )
        self._round_began = time.perf_counter()

    def finish(self, weights: dict[str, Any] | None) -> dict[str, float]:
        """Final metrics on the parent (the last round's global model), tags naming dropped clients; the global
        weights as a plain-tensor file."""
        from twinids.tracking.run import temporary_directory
        from twinids.training.checkpoint_io import save_torch_checkpoint

        added = {"federation/rounds": float(len(self.rounds))}
        if self.client_f1:
            added["test/mean_client_f1_macro"] = float(np.mean(list(self.client_f1.values())))
        added["time/round_s_mean"] = float(np.mean(self.round_seconds)) if self.round_seconds else 0.0
        self.parent.log_metrics(added, step=len(self.rounds))  # beside the last round's own metrics
        final = {k: v for k, v in self.last.items() if k.startswith(("test/", "privacy/"))} | added
        dropped = [f"{name}@{r.number}" for r in self.rounds for name in r.dropped]
        skipped = [str(r.number) for r in self.rounds if r.skipped_because]
        self.parent.set_tags({DROPPED_TAG: ",".join(dropped), SKIPPED_TAG: ",".join(skipped)})
        if weights:
            with temporary_directory() as folder:
                from pathlib import Path

                path = Path(folder) / "global_net.pt"
                save_torch_checkpoint({"state_dict": weights, "classes": self.classes}, path)
                self.parent.log_file(path, "federation")
        return final


_CHILD_METRICS = {
    "train_loss": "train/loss",
    "epsilon": "privacy/epsilon",
    "steps": "privacy/steps",
    "windows": "train/windows",
    "fit_s": "time/fit_s",
    "test_f1_macro": "test/f1_macro",
}


def _flat(node: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
