"""Response playbooks: which actions an alert sets off on its device, for how long, and at what cost.

A playbook (configs/playbook/<name>.yaml) lists rules. A rule fires for device D when D's alerts (optionally only
those a classifier calls one of `attacks`) number `alerts` within `within_s` seconds; its actions then stay on until
`hold_s` seconds after D's last such alert. The simulator carries out the physical actions (`twinids.twin.response`);
a ticket is a log record for an operator. Each action costs `per_trigger` each time it goes on and `per_minute`
while on, in the unit impact is measured in (minutes of one device out of its safe band), so a response's cost and
the harm it prevents add up.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twinids.errors import TwinIDSError, require_integer, require_number
from twinids.stream.online import Decision
from twinids.twin.response import PLANT_ACTIONS, Response

log = logging.getLogger("twinids.respond")
TICKET = "ticket"
ACTIONS = (*PLANT_ACTIONS, TICKET)
KEY = "playbook"


@dataclass(frozen=True)
class Rule:
    """On `alerts` alerts of one device within `within_s` seconds (of `attacks` only, if set): `actions`, held."""

    name: str
    attacks: frozenset[str] | None
    alerts: int
    within_s: float
    hold_s: float
    actions: tuple[str, ...]

    def answers(self, decision: Decision) -> bool:
        """Whether an alarming decision counts towards this rule (its predicted class is one the rule answers)."""
        return self.attacks is None or decision.predicted in self.attacks


@dataclass(frozen=True)
class ActionCost:
    """What an action costs each time it goes on and per minute while on (device-minutes out of the safe band)."""

    per_trigger: float
    per_minute: float


@dataclass(frozen=True)
class Playbook:
    """A named list of rules and the cost of every action they take."""

    name: str
    rules: tuple[Rule, ...]
    costs: Mapping[str, ActionCost]

    def check_classes(self, class_names: Iterable[str] | None) -> None:
        """Refuse a rule that answers classes the detector never predicts (None: it predicts none, one-class)."""
        known = set(class_names or ())
        for rule in self.rules:
            if rule.attacks is not None and not rule.attacks <= known:
                named = sorted(known) if known else "no classes (it scores, it does not classify)"
                raise TwinIDSError(
                    f"{KEY}.rules[{rule.name}] answers {sorted(rule.attacks - known)}, but the detector predicts "
                    f"{named}; set the rule's attacks to null to answer every alert"
                )


def parse_playbook(cfg: Mapping[str, Any]) -> Playbook:
    """The playbook a config node describes, every setting checked.

    Raises:
        TwinIDSError: an unknown action, a missing or negative cost, a rule without actions or with a bad count or
            time; the message names the key.
    """
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    rules_node, costs_node = node.get("rules"), node.get("costs")
    if not isinstance(rules_node, list) or not rules_node:
        raise TwinIDSError(f"{KEY}.rules must be a non-empty list of rules; got {rules_node!r}")
    if not isinstance(costs_node, dict):
        raise TwinIDSError(f"{KEY}.costs must map each action to {{per_trigger, per_minute}}; got {costs_node!r}")
    rules = tuple(_rule(index, entry) for index, entry in enumerate(rules_node))
    names = [rule.name for rule in rules]
    if len(set(names)) < len(names):
        raise TwinIDSError(f"{KEY}.rules: two rules share a name ({names}); give each its own")
    costs = {}
    for action in sorted({action for rule in rules for action in rule.actions}):
        entry = costs_node.get(action)
        if not isinstance(entry, dict) or set(entry) != {"per_trigger", "per_minute"}:
            raise TwinIDSError(
                f"{KEY}.costs.{action} must be {{per_trigger: <cost>, per_minute: <cost>}}; got {entry!r}"
            )
        costs[action] = ActionCost(
            float(require_number(entry["per_trigger"], f"{KEY}.costs.{action}.per_trigger", 0)),
            float(require_number(entry["per_minute"], f"{KEY}.costs.{action}.per_minute", 0)),
        )
    return Playbook(str(node.get("name", "?")), rules, costs)


def _rule(index: int, entry: Any) -> Rule:
    """One rule of `playbook.rules`, checked."""
    where = f"{KEY}.rules[{index}]"
    expected = {"name", "attacks", "alerts", "within_s", "hold_s", "actions"}
    if not isinstance(entry, dict) or set(entry) != expected:
        got = sorted(entry) if isinstance(entry, dict) else entry
        raise TwinIDSError(f"{where} must set exactly {sorted(expected)}; got {got!r}")
    actions = entry["actions"]
    if not isinstance(actions, list) or not actions:
        raise TwinIDSError(f"{where}.actions must be a non-empty list of {list(ACTIONS)}; got {actions!r}")
    unknown = [action for action in actions if action not in ACTIONS]
    if unknown:
        raise TwinIDSError(f"{where}.actions: unknown action(s) {unknown}; the simulator carries out {list(ACTIONS)}")
    attacks = entry["attacks"]
    if attacks is not None and (not isinstance(attacks, list) or not attacks):
        raise TwinIDSError(
            f"{where}.attacks must be null (every alert) or a non-empty list of classes; got {attacks!r}"
        )
    return Rule(
        name=str(entry["name"]),
        attacks=None if attacks is None else frozenset(str(attack) for attack in attacks),
        alerts=int(require_integer(entry["alerts"], f"{where}.alerts", 1)),  # type: ignore[arg-type]
        within_s=float(require_number(entry["within_s"], f"{where}.within_s", 0)),
        hold_s=float(require_number(entry["hold_s"], f"{where}.hold_s", 0, open_low=True)),
        actions=tuple(actions),
    )


@dataclass
class ActionLog:
    """What the actions did over a run: times each went on, minutes each was on, and the cost of both."""

    triggers: dict[str, int] = field(default_factory=dict)
    minutes: dict[str, float] = field(default_factory=dict)

    def cost(self, costs: Mapping[str, ActionCost]) -> float:
        """The actions' cost over the run (per trigger and per minute on)."""
        return math.fsum(
            self.triggers.get(action, 0) * price.per_trigger + self.minutes.get(action, 0.0) * price.per_minute
            for action, price in costs.items()
        )


class PlaybookRunner:
    """A playbook carried out on a stream of decisions: per device, its rules' recent alerts and actions on.

    Args:
        playbook: the rules and costs.
        on_event: called with one dict per action going on or off and per ticket (the run's response log).
    """

    def __init__(self, playbook: Playbook, on_event: Callable[[dict[str, Any]], None] = lambda event: None) -> None:
        self.playbook, self.on_event = playbook, on_event
        self.log = ActionLog()
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._until: dict[tuple[str, str], float] = {}

    def observe(self, decision: Decision) -> None:
        """Count an alarming decision towards its device's rules; fire those it completes."""
        if not decision.alarm:
            return
        for rule in self.playbook.rules:
            if not rule.answers(decision):
                continue
            recent = self._recent.setdefault((decision.device, rule.name), deque())
            recent.append(decision.time)
            while recent[0] < decision.time - rule.within_s:
                recent.popleft()
            if len(recent) >= rule.alerts:
                self._fire(rule, decision)

    def _fire(self, rule: Rule, decision: Decision) -> None:
        """Turn the rule's actions on for the decision's device (or keep them on longer)."""
        for action in rule.actions:
            key = (decision.device, action)
            if self._until.get(key, -math.inf) < decision.time:
                self.log.triggers[action] = self.log.triggers.get(action, 0) + 1
                event = {"time": decision.time, "device": decision.device, "action": action, "on": True}
                self.on_event({**event, "rule": rule.name, "score": decision.score, "predicted": decision.predicted})
                if action == TICKET:
                    log.info(
                        "ticket: %s at %g s (rule %s, score %.3g)",
                        decision.device,
                        decision.time,
                        rule.name,
                        decision.score,
                    )
            self._until[key] = max(self._until.get(key, -math.inf), decision.time + rule.hold_s)

    def response(self, device: str, now: float, step_seconds: float) -> Response:
        """The physical actions on `device` for the step starting at `now` (their minutes counted as that step's)."""
        on = set()
        for (name, action), until in list(self._until.items()):
            if name != device:
                continue
            if until < now:
                del self._until[(name, action)]
                self.on_event({"time": now, "device": device, "action": action, "on": False})
                continue
            on.add(action)
            self.log.minutes[action] = self.log.minutes.get(action, 0.0) + step_seconds / 60.0
        return Response.of(on)
