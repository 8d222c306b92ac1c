"""`respond_run(run_id)`: a detector and a playbook defending the simulated plant, logged as a run linked to it.

Per replica of the detector's plant (`data.source.replica`: the same devices, weather and noise it never trained
on) the simulator runs three times with the same random streams: without attacks (the baseline), attacked with no
response, and attacked with the detector deciding every window as it arrives and the playbook acting on its alerts
(`closed_loop.run_closed_loop`). Impact is what a run harms beyond its baseline (`twinids.twin.impact`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError, require_integer, require_number

RESPOND_JOB = "respond"
KEY_TAG = "twinids.respond.key"  # the detector run and these settings, hashed (`tracking.follow_up`)
ALL, NONE = "all", "none"


@dataclass(frozen=True)
class RespondResult:
    """What a response run logged: its metrics and its run id."""

    metrics: dict[str, float]
    run_id: str


def respond_settings(overrides: Sequence[str]) -> Any:
    """configs/respond.yaml with the command's overrides, its settings checked."""
    from twinids.config import compose

    cfg = compose(list(overrides), config_name="respond")
    replicas = cfg.replicas
    if not isinstance(replicas, Sequence) or isinstance(replicas, str) or not replicas:
        raise TwinIDSError(f"replicas must be a non-empty list of replica numbers; got {replicas!r}")
    for index, replica in enumerate(replicas):
        require_integer(replica, f"replicas[{index}]", 0)
    require_integer(cfg.n_steps, "n_steps", 1)
    if cfg.rate is not None:
        require_number(cfg.rate, "rate", 0, open_low=True)
    return cfg


def scenario_attacks(run_attacks: Mapping[str, Any], attack: str, rate: float | None) -> dict[str, Any]:
    """The attacks a scenario injects: the run's mix, one of its types alone, or none; at `rate` if set.

    Raises:
        TwinIDSError: a type the run's simulator does not inject.
    """
    if attack == NONE:
        return {}
    if attack != ALL and attack not in run_attacks:
        raise TwinIDSError(f"attack={attack}: the run's simulator injects {sorted(run_attacks)}; or use all or none")
    chosen = run_attacks if attack == ALL else {attack: run_attacks[attack]}
    return {name: {**settings, **({} if rate is None else {"rate": float(rate)})} for name, settings in chosen.items()}


def response_key(run_id: str, overrides: Sequence[str]) -> str:
    """The key of this response study (its resolved settings) with detector run `run_id`."""
    from twinids.tracking.follow_up import follow_up_key

    return follow_up_key(run_id, respond_settings(overrides))


def finished_response(run_id: str, overrides: Sequence[str], tracking_uri: str) -> str | None:
    """The id of a finished response run with these settings and this detector run, if the store holds one."""
    from twinids.tracking.follow_up import finished_follow_up

    return finished_follow_up(KEY_TAG, response_key(run_id, overrides), tracking_uri)


def respond_run(
    run_id: str,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
) -> RespondResult:
    """Defend replicas of a simulator run's plant with its detector and a playbook; log impact as a new run."""
    from omegaconf import OmegaConf

    from twinids.response.playbook import PlaybookRunner, parse_playbook
    from twinids.stream.detect_job import load_online_detector
    from twinids.tracking.follow_up import follow_up_key
    from twinids.tracking.provenance import provenance_tags
    from twinids.tracking.run import start_run, temporary_directory
    from twinids.training.job import job_tags, quiet_tracking
    from twinids.twin.link import SIMULATOR

    quiet_tracking()
    respond_cfg = respond_settings(overrides)
    playbook = parse_playbook(respond_cfg.playbook)
    with temporary_directory() as scratch:
        online, cfg, card = load_online_detector(run_id, tracking_uri, Path(scratch))
    if cfg.data.source.get("_target_") != SIMULATOR:
        raise TwinIDSError(f"twinids respond runs the simulator; run {run_id} was trained on '{cfg.data.name}'")
    playbook.check_classes(online.class_names[1:] if online.rule.threshold is None else None)
    source = OmegaConf.to_container(cfg.data.source, resolve=True)
    attacks = scenario_attacks(source["attacks"], str(respond_cfg.attack), respond_cfg.rate)
    events: list[dict[str, Any]] = []
    totals = _Totals()
    for replica in respond_cfg.replicas:
        plant = {**source, "replica": int(replica), "n_steps": int(respond_cfg.n_steps)}
        runner = PlaybookRunner(playbook, lambda event, r=int(replica): events.append({"replica": r, **event}))
        totals.add(plant, attacks, online.fresh(), runner, playbook)
    figures = totals.metrics()
    logged = OmegaConf.to_container(respond_cfg, resolve=True)
    logged["playbook"] = logged["playbook"]["name"]
    run_tags = {
        **job_tags(cfg, RESPOND_JOB, card.privacy),
        **provenance_tags(str(cfg.trainer.get("accelerator", "cpu")), [], source),  # code, machine, the plant's data
        "twinids.source_run_id": card.run_id or run_id,
        KEY_TAG: follow_up_key(card.run_id or run_id, respond_cfg),
        **(tags or {}),
    }
    with start_run(cfg.tracking.mlflow_experiment, tracking_uri or cfg.tracking.uri, None, run_tags) as run:
        run.log_config(cfg, list(card.overrides))
        run.log_params({"response": logged})
        run.log_metrics(figures, step=0)
        run.log_text("\n".join(json.dumps(event) for event in events) + "\n", "responses.jsonl")
        run.log_text(OmegaConf.to_yaml(respond_cfg.playbook), "playbook.yaml")
    return RespondResult(figures, run.run_id)


class _Totals:
    """Impact, actions and decisions summed over a job's replicas."""

    def __init__(self) -> None:
        from twinids.twin.impact import Impact

        self.undefended = self.defended = Impact(0.0, 0.0)
        self.action_cost = 0.0
        self.episodes = 0
        self.triggers: dict[str, int] = {}
        self.minutes: dict[str, float] = {}
        self.decisions: list[tuple[int, bool]] = []

    def add(self, plant: dict[str, Any], attacks: dict[str, Any], online: Any, runner: Any, playbook: Any) -> None:
        """Run one replica three ways (baseline, undefended, defended) and add up what each harmed."""
        from twinids.response.closed_loop import run_closed_loop
        from twinids.twin.impact import network_impact

        def impact(outcome: Any) -> Any:
            return network_impact(outcome.plants, outcome.models)

        baseline = impact(run_closed_loop({**plant, "attacks": {}}))
        undefended_run = run_closed_loop({**plant, "attacks": attacks})
        undefended = impact(undefended_run) - baseline
        self.episodes += undefended_run.episodes
        defended_run = run_closed_loop({**plant, "attacks": attacks}, online, runner)
        self.undefended += undefended
        self.defended += impact(defended_run) - baseline
        self.action_cost += runner.log.cost(playbook.costs)
        for action, count in runner.log.triggers.items():
            self.triggers[action] = self.triggers.get(action, 0) + count
        for action, minutes in runner.log.minutes.items():
            self.minutes[action] = self.minutes.get(action, 0.0) + minutes
        self.decisions += [(label, decision.alarm) for label, decision in defended_run.decisions]

    def metrics(self) -> dict[str, float]:
        """The job's response/* metrics."""
        decided = np.array(self.decisions, dtype=np.float64).reshape(-1, 2)
        normal, attacked = decided[decided[:, 0] == 0, 1], decided[decided[:, 0] == 1, 1]
        undefended, defended = self.undefended.band_minutes, self.defended.band_minutes
        figures = {
            "response/impact_undefended_min": undefended,
            "response/impact_defended_min": defended,
            "response/energy_undefended_h": self.undefended.actuator_hours,
            "response/energy_defended_h": self.defended.actuator_hours,
            "response/action_cost": self.action_cost,
            "response/cost_defended": defended + self.action_cost,
            "response/episodes": float(self.episodes),
            "response/alerts": float(attacked.sum() + normal.sum()),
            "response/false_alarm_rate": float(normal.mean()) if len(normal) else float("nan"),
        }
        if undefended > 0:
            figures["response/impact_reduction"] = 1.0 - defended / undefended
        figures |= {f"response/triggers/{action}": float(count) for action, count in self.triggers.items()}
        figures |= {f"response/minutes_on/{action}": minutes for action, minutes in self.minutes.items()}
        return figures
