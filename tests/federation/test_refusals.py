"""`twinids federate` refuses a bad federation in one line, before any run or process exists."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["federation.engine=cloud"], "federation.engine must be one of ['simulation', 'deployment', 'pooled']"),
        (["federation.strategy=fedsgd"], "federation.strategy must be one of ['fedavg', 'fedprox']"),
        (["federation.rounds=0"], "federation.rounds must be an integer >= 1"),
        (["federation.min_clients=9"], "federation.min_clients=9 is more than the 5 clients"),
        (["+federation.clients.plant_1.sorce.seed=3"], "federation.clients.plant_1.sorce is not a data setting"),
        (
            ["federation.client_dp.target_epsilon=3", "federation.client_dp.noise_multiplier=1"],
            "set one of federation.client_dp.target_epsilon and federation.client_dp.noise_multiplier",
        ),
        (["federation.client_dp.target_epsilon=3", "federation.client_dp.delta=0.3"], "not below 1/clients = 0.2"),
        (["federation.client_dp.target_epsilon=3", "federation.client_dp.clipping=both"], "clipping must be one of"),
        (["privacy=dp"], "privacy=dp needs exactly one of privacy.target_epsilon"),
        (
            ["federation.engine=pooled", "federation.client_dp.target_epsilon=3"],
            "there are no client updates for federation.client_dp to act on",
        ),
        (["task=score", "data.train_on=normal"], "twinids federate trains supervised detectors (task=classify)"),
        (["privacy=dp", "privacy.target_epsilon=3", "privacy.audit.canaries=100"], "privacy.audit.canaries"),
    ],
)
def test_a_bad_federation_is_one_line_and_no_run(twinids_cli, tmp_path, overrides, message):
    result = twinids_cli("federate", *overrides)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "mlruns").exists(), "a refused federation created a tracking store"


def test_a_client_level_epsilon_no_noise_reaches_in_the_rounds_is_refused(twinids_cli):
    result = twinids_cli("federate", "federation.client_dp.target_epsilon=1e-9", "federation.rounds=1000")
    assert result.returncode == 2
    assert "federation.client_dp.target_epsilon=1e-09 cannot be reached in 1000 rounds" in result.stderr


def test_experiment_smoke_shrinks_the_federation_and_the_trainer():
    from twinids.config import compose

    cfg = compose(["experiment=smoke"], config_name="federate")
    full = compose([], config_name="federate")
    assert cfg.federation.rounds == 2 < full.federation.rounds
    assert [n for n, c in cfg.federation.clients.items() if c is not None] == ["plant_1", "plant_2", "plant_3"]
    assert len(full.federation.clients) == 5
    assert cfg.trainer.limit_train_batches == 10


def test_a_client_trains_the_runs_data_with_its_own_changes():
    from twinids.config import compose
    from twinids.federation.clients import client_config
    from twinids.federation.settings import FederationSettings

    cfg = compose(["federation.rounds=4", "federation.local_epochs=2"], config_name="federate")
    settings = FederationSettings.from_config(cfg.federation)
    plant = client_config(cfg, settings, "plant_3")
    assert plant.data.source.seed == 103 and plant.data.source.devices.heated_room == 3
    assert plant.data.source.n_steps == cfg.data.source.n_steps  # everything else is the run's
    assert plant.trainer.max_epochs == 8  # DP-SGD plans its noise for every local epoch of every round
    assert cfg.data.source.seed == cfg.seed  # the run's own config is left as it was
