"""The one-run privacy audit: its ε lower bound (Steinke, Nasr, Jagielski 2023), and white-box (gradient) and
black-box (input window) canaries in DP-SGD and non-private runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twinids.errors import TwinIDSError
from twinids.privacy.one_run_bound import audit_guesses, epsilon_lower, p_value
from twinids.training.train import train

# Worked numbers of the paper's Appendix D algorithm, which jax_privacy.auditing computes alike (to 1e-9).
ANCHORS = [  # m, r, v, δ, ε_lower at 95%
    (1000, 100, 90, 1e-5, 1.62614),
    (1000, 100, 75, 1e-5, 0.69947),
    (5000, 1000, 900, 1e-5, 2.01826),
    (1000, 100, 100, 1e-5, 3.46538),
    (100, 50, 45, 1e-5, 1.39279),
]


@pytest.mark.parametrize(("m", "r", "v", "delta", "expected"), ANCHORS)
def test_the_lower_bound_matches_the_papers_algorithm(m, r, v, delta, expected):
    assert epsilon_lower(m, r, v, delta) == pytest.approx(expected, abs=1e-4)


def test_all_guesses_right_without_delta_gives_the_closed_form_logit_of_beta_to_the_one_over_r():
    bound = epsilon_lower(1000, 100, 100, 0.0)
    assert bound == pytest.approx(math.log(0.05 ** (1 / 100) / (1 - 0.05 ** (1 / 100))), abs=1e-6)


def test_the_p_value_is_the_binomial_tail_plus_the_delta_term():
    assert p_value(1000, 100, 90, 1.0, 1e-5) == pytest.approx(0.0008412885614385305, rel=1e-9)
    assert p_value(1000, 100, 90, 1.0, 0.0) == pytest.approx(2.7358128007661584e-05, rel=1e-9)


def test_guessing_no_better_than_chance_rules_out_nothing():
    rng = np.random.default_rng(0)
    included = rng.random(2000) < 0.5
    assert audit_guesses(rng.normal(size=2000), included, 1e-5, (0.01, 0.1, 0.5))[0] == 0.0


def test_guesses_go_both_ways_in_for_the_highest_scores_out_for_the_lowest():
    included = np.array([True] * 50 + [False] * 50)
    scores = np.where(included, 1.0, 0.0)
    bound, guesses, right = audit_guesses(scores, included, 1e-5, (0.5, 1.0))
    assert (guesses, right) == (100, 100)  # 50 "in" at the top and 50 "out" at the bottom, all right
    assert bound == pytest.approx(epsilon_lower(100, 100, 100, 1e-5, 0.025))
    flipped = audit_guesses(-scores, included, 1e-5, (0.5, 1.0))
    assert flipped[0] == 0.0  # a ranking that is all wrong proves nothing


def simulated_canaries(score: str, sigma: float = 1.0, q: float = 1 / 17, steps: int = 510):
    """WhiteBoxCanaries on one 4000-coordinate tensor, released with Gaussian noise σ as DP-SGD's would be."""
    from twinids.privacy.canaries import WhiteBoxCanaries

    gradient = torch.zeros(4000)
    canaries = WhiteBoxCanaries([gradient], 2000, 1.0, q, seed=7, noise=sigma, score=score)
    noise = torch.Generator().manual_seed(11)
    for _ in range(steps):
        gradient.zero_()
        canaries.step([gradient], 1.0, lambda: [gradient.add_(sigma * torch.randn(4000, generator=noise))])
    return canaries


def test_the_likelihood_ratio_score_finds_canaries_the_plain_sum_misses():
    by_ratio = simulated_canaries("likelihood_ratio")
    by_sum = simulated_canaries("sum")
    assert torch.equal(by_ratio.included, by_sum.included)  # the same canaries and noise, two statistics
    ratio, total = by_ratio.audit(1e-5)["epsilon_lower"], by_sum.audit(1e-5)["epsilon_lower"]
    assert ratio > total + 0.3 and total > 1.0  # σ 1, q 1/17, 510 steps: ε 9.1 by PRV; 2.35 against 1.92


def test_one_steps_likelihood_ratio_is_log_of_one_minus_q_plus_q_times_the_gaussian_ratio():
    canaries = simulated_canaries("likelihood_ratio", sigma=0.8, steps=0)
    residual = torch.tensor([-1.0, 0.0, 0.5, 1.0, 3.0], dtype=torch.float64)
    q = 1 / 17
    expected = torch.log(1 - q + q * torch.exp((residual - 0.5) / 0.8**2))
    torch.testing.assert_close(canaries._step_score(residual), expected)


DP = ["privacy=dp", "data.batch_size=256", "model.module.net.hidden_size=8", "trainer.max_epochs=3"]


def test_a_sound_dp_run_logs_a_lower_bound_below_its_claim(smoke_config, tmp_path, mlflow_client):
    cfg = smoke_config(tmp_path, *DP, "privacy.target_epsilon=1", "privacy.audit.canaries=500")
    result = train(cfg)
    run = mlflow_client(tmp_path).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert 0 <= run.data.metrics["audit/epsilon_lower"] <= result.privacy["epsilon"]
    assert run.data.params["audit.canaries"] == "500"
    assert int(run.data.params["audit.canary_steps"]) == result.privacy["steps"]


def test_with_the_noise_switched_off_while_sigma_is_claimed_the_audit_fails_the_run(
    smoke_config, tmp_path, mlflow_client, monkeypatch
):
    """The audit's power: a test-only fault adds no noise while the accountant still steps with σ."""
    import opacus.optimizers.optimizer
    import opacus.optimizers.optimizer_fast_gradient_clipping as ghost
    import torch

    def no_noise(std, reference, generator=None, secure_mode=False):
        return torch.zeros_like(reference)

    for module in (opacus.optimizers.optimizer, ghost):
        monkeypatch.setattr(module, "_generate_noise", no_noise, raising=False)
    cfg = smoke_config(tmp_path, *DP, "privacy.target_epsilon=1", "privacy.audit.canaries=500")
    with pytest.raises(TwinIDSError, match=r"the privacy audit found ε ≥ .* above the ε = 0\.9\d\d the accountant"):
        train(cfg)
    [run] = mlflow_client(tmp_path).search_runs(["1"])
    assert run.info.status == "FAILED"
    assert run.data.metrics["audit/epsilon_lower"] > 2  # more than twice the ε ≈ 1 claimed


def test_more_canaries_than_coordinates_and_a_resumed_audit_are_refused(smoke_config, tmp_path):
    from pathlib import Path

    from twinids.data.registry import build_windows
    from twinids.training.detector import make_detector

    cfg = smoke_config(tmp_path, *DP, "privacy.noise_multiplier=1", "privacy.audit.canaries=10000000")
    data = build_windows(cfg.data)
    with pytest.raises(TwinIDSError, match=r"privacy\.audit\.canaries=10000000 exceeds the model's"):
        make_detector(cfg, data).module.configure_optimizers()
    audited = make_detector(smoke_config(tmp_path, *DP, "privacy.noise_multiplier=1", "privacy.audit.canaries=5"), data)
    with pytest.raises(TwinIDSError, match=r"a run with privacy\.audit\.canaries cannot be resumed"):
        audited.fit(data, job=None, resume_from=Path("last.ckpt"))  # refused before anything is read or written


def test_a_non_private_run_hides_no_white_box_canary_so_its_bound_is_the_most_its_canaries_can_show(
    smoke_config, tmp_path, mlflow_client
):
    from twinids.privacy.canaries import GUESS_FRACTIONS

    # enough epochs that every included canary joins some step (else it scores 0, like an excluded one)
    plain = ["model.module.net.hidden_size=8", "trainer.max_epochs=10", "trainer.limit_train_batches=1.0"]
    result = train(smoke_config(tmp_path, *plain, "privacy.audit.canaries=500"))
    run = mlflow_client(tmp_path).get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.privacy is None
    guesses = int(run.data.params["audit.canary_guesses"])
    assert int(run.data.params["audit.canary_guesses_right"]) == guesses  # every "in" and "out" guess right
    bound = epsilon_lower(500, guesses, guesses, 1e-5, 0.05 / len(GUESS_FRACTIONS))
    assert run.data.metrics["audit/epsilon_lower"] == pytest.approx(bound) and bound > 2.5


def test_black_box_canaries_join_the_training_windows_and_their_bound_stays_below_a_sound_dp_claim(
    smoke_config, tmp_path, mlflow_client
):
    from twinids.data.registry import build_windows
    from twinids.training.detector import make_detector

    black_box = ["privacy.audit.canaries=300", "privacy.audit.kind=black_box", "privacy.audit.seed=4"]
    cfg = smoke_config(tmp_path, *DP, "privacy.target_epsilon=2", *black_box)
    data = build_windows(cfg.data)
    detector = make_detector(cfg, data)
    included = int(detector.input_canaries.included.sum())
    assert 100 < included < 200  # each of the 300 in with probability ½
    assert len(detector.datamodule.datasets["train"]) == len(data.starts["train"]) + included
    assert detector.privacy.n_train == len(data.starts["train"]) + included  # Poisson-sampled and counted like any
    windows, _, _, _ = detector.datamodule.datasets["train"].__getitems__([0, len(data.starts["train"])])
    assert torch.equal(windows[1], detector.input_canaries.training_windows()[0][0])

    result = train(cfg)
    run = mlflow_client(tmp_path).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert 0 <= run.data.metrics["audit/epsilon_lower"] <= result.privacy["epsilon"]
    assert run.data.params["audit.canaries"] == "300"
    assert run.data.params["privacy/audit/kind"] == "black_box"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["privacy.audit.kind=grey_box"], r"privacy\.audit\.kind must be one of \['white_box', 'black_box'\]"),
        (
            ["privacy=dp", "privacy.target_epsilon=1", "privacy.audit.delta=1e-3"],
            r"privacy\.audit\.delta=0\.001 differs",
        ),
        (["privacy.audit.canaries=-1"], r"privacy\.audit\.canaries must be an integer >= 0"),
        (
            ["model=random_forest", "privacy.audit.canaries=10"],
            r"model=random_forest cannot take privacy\.audit\.canaries",
        ),
    ],
)
def test_audit_settings_that_cannot_be_honoured_are_refused_before_any_run(smoke_config, tmp_path, overrides, message):
    from twinids.data.registry import build_windows
    from twinids.training.detector import make_detector

    cfg = smoke_config(tmp_path, *overrides)
    with pytest.raises(TwinIDSError, match=message):
        make_detector(cfg, build_windows(cfg.data))


@pytest.mark.parametrize(
    ("override", "switch"),
    [
        ("privacy.audit.kind=black_box", "privacy.audit.canaries"),
        ("privacy.audit.seed=3", "privacy.audit.canaries"),
        ("callbacks.weight_averaging.update_starting_at_epoch=2", "callbacks.weight_averaging.decay"),
    ],
)
def test_a_setting_inside_a_switched_off_node_is_refused_not_ignored(smoke_config, tmp_path, override, switch):
    cfg = smoke_config(tmp_path, override)
    with pytest.raises(
        TwinIDSError, match=rf"{override.split('=')[0]} is set, but {switch} is (0|null), so nothing reads"
    ):
        train(cfg, [override])
