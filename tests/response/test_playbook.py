"""Response playbooks (issue 17 §3): when a rule fires, how long its actions stay on, what they cost, and the one-line
refusals of a playbook that cannot be carried out."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from twinids.config import compose
from twinids.errors import TwinIDSError
from twinids.response.playbook import PlaybookRunner, parse_playbook
from twinids.stream.online import Decision
from twinids.twin.response import NO_RESPONSE, Response

MINUTE = 60.0


def playbook(**rule_changes):
    """One rule: 2 alerts within 300 s isolate the device's commands and raise a ticket, held 600 s."""
    rule = {
        "name": "contain",
        "attacks": None,
        "alerts": 2,
        "within_s": 300,
        "hold_s": 600,
        "actions": ["isolate_commands", "ticket"],
        **rule_changes,
    }
    costs = {"isolate_commands": {"per_trigger": 1.0, "per_minute": 0.5}, "ticket": {"per_trigger": 5, "per_minute": 0}}
    return parse_playbook({"name": "test", "rules": [rule], "costs": costs})


def alert(time: float, device: str = "pump", predicted: str | None = None, alarm: bool = True) -> Decision:
    return Decision(device, time, 0.9, None if predicted else 0.5, alarm, predicted)


def test_the_shipped_playbook_parses_and_answers_every_alert():
    shipped = parse_playbook(compose([], config_name="respond").playbook)
    assert shipped.name == "default"
    assert all(rule.attacks is None for rule in shipped.rules)
    shipped.check_classes(None)  # so a one-class detector, which names no attack type, can drive it


def test_a_rule_fires_on_enough_alerts_within_its_window_and_not_before():
    runner = PlaybookRunner(playbook())
    runner.observe(alert(0.0))
    assert runner.response("pump", MINUTE, MINUTE) == NO_RESPONSE
    runner.observe(alert(400.0))  # the first is more than 300 s old: still one alert in the window
    assert runner.response("pump", 460.0, MINUTE) == NO_RESPONSE
    runner.observe(alert(460.0))
    assert runner.response("pump", 520.0, MINUTE) == Response(isolate_commands=True)
    assert runner.response("fan", 520.0, MINUTE) == NO_RESPONSE  # actions are per device


def test_actions_stay_on_until_hold_after_the_last_alert_and_cost_per_trigger_and_minute():
    events = []
    runner = PlaybookRunner(playbook(), events.append)
    for time in (0.0, 60.0, 120.0):  # fires at 60 s; the third alert holds it to 720 s
        runner.observe(alert(time))
    on = [t for t in range(180, 1200, 60) if runner.response("pump", float(t), MINUTE).isolate_commands]
    assert on == list(range(180, 780, 60))  # the steps from 180 s to 720 s: 10 minutes
    assert runner.log.triggers == {"isolate_commands": 1, "ticket": 1}
    assert runner.log.minutes["isolate_commands"] == 10
    assert runner.log.cost(runner.playbook.costs) == pytest.approx(1.0 + 10 * 0.5 + 5)
    assert [(e["action"], e["on"]) for e in events] == [
        ("isolate_commands", True),
        ("ticket", True),
        ("isolate_commands", False),
        ("ticket", False),
    ]


def test_a_rule_for_some_attack_types_counts_only_the_alerts_a_classifier_gives_those():
    runner = PlaybookRunner(playbook(attacks=["denial_of_service"]))
    for time in (0.0, 60.0):
        runner.observe(alert(time, predicted="spoofing"))
    assert runner.response("pump", 120.0, MINUTE) == NO_RESPONSE
    for time in (120.0, 180.0):
        runner.observe(alert(time, predicted="denial_of_service"))
    assert runner.response("pump", 240.0, MINUTE).isolate_commands
    runner.observe(alert(300.0, alarm=False))  # decisions that do not alarm count for nothing


def test_a_rule_naming_classes_the_detector_never_predicts_is_refused():
    answers_dos = playbook(attacks=["denial_of_service"])
    answers_dos.check_classes(["denial_of_service", "replay"])
    with pytest.raises(TwinIDSError, match=r"answers \['denial_of_service'\], but the detector predicts \['attack'\]"):
        answers_dos.check_classes(["attack"])
    with pytest.raises(TwinIDSError, match="no classes"):
        answers_dos.check_classes(None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actions": ["reboot"]}, r"playbook.rules\[0\].actions: unknown action\(s\) \['reboot'\]"),
        ({"actions": []}, r"playbook.rules\[0\].actions must be a non-empty list"),
        ({"alerts": 0}, r"playbook.rules\[0\].alerts"),
        ({"alerts": True}, r"playbook.rules\[0\].alerts"),
        ({"hold_s": 0}, r"playbook.rules\[0\].hold_s"),
        ({"attacks": []}, r"playbook.rules\[0\].attacks must be null"),
        ({"when": "always"}, r"playbook.rules\[0\] must set exactly"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_key(change, message):
    with pytest.raises(TwinIDSError, match=message):
        playbook(**change)


def test_an_action_without_its_cost_is_refused():
    node = OmegaConf.create(
        {
            "name": "x",
            "rules": [
                {"name": "r", "attacks": None, "alerts": 1, "within_s": 0, "hold_s": 60, "actions": ["rate_limit"]}
            ],
            "costs": {"ticket": {"per_trigger": 1, "per_minute": 0}},
        }
    )
    with pytest.raises(TwinIDSError, match=r"playbook.costs.rate_limit must be \{per_trigger"):
        parse_playbook(node)
