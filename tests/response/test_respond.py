"""`twinids respond` (issue 17 §3): the simulator in closed loop with a trained detector and a playbook.

One small LSTM run on the simulator serves the module. In closed loop the detector decides every window as it does
offline on the same simulation; the command logs impact undefended and defended as a run linked to the detector.
"""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from twinids.errors import TwinIDSError
from twinids.response.closed_loop import run_closed_loop
from twinids.response.respond_job import finished_response, scenario_attacks
from twinids.stream.detect_job import load_online_detector
from twinids.training.train import train
from twinids.twin import simulate_network

RESPOND = ["attack=command_injection", "replicas=[1]", "n_steps=600"]


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory, smoke_config):
    """A smoke LSTM on the simulator: workdir, run id, tracking URI."""
    workdir = tmp_path_factory.mktemp("respond")
    run_id = train(smoke_config(workdir), []).run_id
    return workdir, run_id, f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"


def test_in_closed_loop_the_detector_decides_every_window_as_it_does_offline(lstm_run):
    workdir, run_id, uri = lstm_run
    online, cfg, _ = load_online_detector(run_id, uri, workdir / "scratch")
    source = {**OmegaConf.to_container(cfg.data.source, resolve=True), "replica": 2, "n_steps": 500}
    looped = run_closed_loop(source, online.fresh())  # watching only: no playbook acts

    frame = simulate_network(**{key: value for key, value in source.items() if key != "_target_"})
    offline = online.fresh().push_many(frame.to_dict("records"))  # device by device, in time order
    expected = {
        (d.device, d.time): (label, d.score, d.alarm) for d, label in zip(offline, frame["label"], strict=True) if d
    }
    got = {(d.device, d.time): (label, d.score, d.alarm) for label, d in looped.decisions}
    assert len(got) == len(expected) > 0
    assert got == expected


def test_a_playbook_acting_on_alerts_changes_the_plant_from_the_next_step_on(lstm_run):
    import numpy as np

    from twinids.response.playbook import PlaybookRunner, parse_playbook

    workdir, run_id, uri = lstm_run
    online, cfg, _ = load_online_detector(run_id, uri, workdir / "scratch")
    source = {**OmegaConf.to_container(cfg.data.source, resolve=True), "replica": 1, "n_steps": 600}
    source["attacks"] = scenario_attacks(source["attacks"], "command_injection", 2.0)
    rule = {"name": "r", "attacks": None, "alerts": 1, "within_s": 0, "hold_s": 600, "actions": ["isolate_commands"]}
    costs = {"isolate_commands": {"per_trigger": 0, "per_minute": 0}}
    runner = PlaybookRunner(parse_playbook({"name": "t", "rules": [rule], "costs": costs}))
    watched = run_closed_loop(source, online.fresh())
    defended = run_closed_loop(source, online.fresh(), runner)
    first_alarm = min(d.time for _, d in watched.decisions if d.alarm)  # the same until the playbook first acts
    assert runner.log.triggers["isolate_commands"] > 0
    changed = [
        name
        for name in watched.plants
        if not np.array_equal(watched.plants[name].applied, defended.plants[name].applied)
    ]
    assert changed
    step = int(first_alarm // source["step_seconds"])
    for name in watched.plants:
        np.testing.assert_array_equal(
            watched.plants[name].applied[: step + 1], defended.plants[name].applied[: step + 1]
        )


def test_respond_logs_impact_undefended_and_defended_as_a_run_linked_to_the_detector(
    lstm_run, cli_runner_factory, mlflow_client
):
    workdir, run_id, uri = lstm_run
    done = cli_runner_factory(workdir)("respond", run_id, *RESPOND)
    assert done.returncode == 0, done.stderr
    assert "response/impact_defended_min" in done.stdout
    respond_id = done.stdout.split("run id: ")[1].split()[0]
    run = mlflow_client(workdir).get_run(respond_id)
    assert run.data.tags["twinids.job"] == "respond"
    assert run.data.tags["twinids.source_run_id"] == run_id
    assert run.data.params["response/attack"] == "command_injection"
    assert run.data.params["response/playbook"] == "default"
    metrics = run.data.metrics
    assert metrics["response/impact_undefended_min"] > 0  # injected commands pushed the plant out of its band
    assert metrics["response/cost_defended"] == pytest.approx(
        metrics["response/impact_defended_min"] + metrics["response/action_cost"]
    )
    assert finished_response(run_id, RESPOND, uri) == respond_id
    assert finished_response(run_id, [*RESPOND[:2], "n_steps=700"], uri) is None
    log = mlflow_client(workdir).download_artifacts(respond_id, "responses.jsonl", str(workdir / "scratch"))
    with open(log) as lines:
        events = [json.loads(line) for line in lines]
    assert all({"replica", "time", "device", "action", "on"} <= set(event) for event in events)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["attack=stealthy_injection"], "attack=stealthy_injection: the run's simulator injects"),
        (["replicas=[]"], "replicas must be a non-empty list"),
        (["n_steps=0"], "n_steps"),
        (["playbook.rules.0.actions=[reboot]"], r"unknown action\(s\) \['reboot'\]"),
        (["playbook=none_such"], "playbook"),
    ],
)
def test_bad_settings_are_refused_in_one_line_before_any_run(lstm_run, cli_runner_factory, overrides, message):
    import re

    workdir, run_id, _ = lstm_run
    done = cli_runner_factory(workdir)("respond", run_id, *overrides)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert re.search(message, lines[0]), lines[0]


def test_a_scenario_injects_the_run_own_settings_of_one_type_at_the_rate_asked():
    run_attacks = {"replay": {"rate": 1.0, "length": [20, 60], "max_lag": 500}, "spoofing": {"rate": 1.0}}
    assert scenario_attacks(run_attacks, "replay", 2.0) == {"replay": {"rate": 2.0, "length": [20, 60], "max_lag": 500}}
    assert scenario_attacks(run_attacks, "all", None) == run_attacks
    assert scenario_attacks(run_attacks, "none", 2.0) == {}
    with pytest.raises(TwinIDSError, match="injects"):
        scenario_attacks(run_attacks, "command_injection", None)
