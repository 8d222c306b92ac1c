"""Transfer (MAS): a pre-trained source, adapted to other features, frozen parts, DP fine-tuning, clear refusals."""

from __future__ import annotations

import pytest
import torch

from twinids.data.registry import build_windows
from twinids.errors import TwinIDSError
from twinids.training.detector import make_detector
from twinids.training.evaluate import evaluate
from twinids.training.train import train

SMALL = ["model.module.net.hidden_size=8", "model.module.net.num_layers=1"]


@pytest.fixture(scope="module")
def source(tmp_path_factory, smoke_config):
    """A non-private LSTM pre-trained on the simulator: (workdir, its JobResult)."""
    workdir = tmp_path_factory.mktemp("transfer")
    return workdir, train(smoke_config(workdir, *SMALL, "trainer.max_epochs=1"))


def finetune(smoke_config, workdir, source_run, *overrides: str):
    return smoke_config(workdir, "transfer=finetune", f"transfer.source={source_run}", *overrides)


def nsl_kdd(shared_datasets) -> list[str]:
    return ["data=nsl_kdd", f"data.root={shared_datasets}"]


def test_a_source_with_other_features_gets_an_input_adapter_and_keeps_its_weights(
    source, smoke_config, shared_datasets
):
    workdir, pretrained = source
    cfg = finetune(smoke_config, workdir, pretrained.run_id, *nsl_kdd(shared_datasets))
    detector = make_detector(cfg, build_windows(cfg.data))
    net = detector.module.net
    assert cfg.transfer.plan.adapter and net.adapter.in_features == len(detector.datamodule.data.feature_names)
    stored = torch.load(pretrained.checkpoint, weights_only=True)["state_dict"]
    torch.testing.assert_close(net.net.lstm.weight_hh_l0, stored["net.lstm.weight_hh_l0"])
    assert not any(p.requires_grad for p in net.net.lstm.parameters())
    assert all(p.requires_grad for p in net.adapter.parameters()) and net.net.head.weight.requires_grad


def test_frozen_parameters_get_no_gradient_samples_and_do_not_move_under_dp(source, smoke_config, shared_datasets):
    workdir, pretrained = source
    cfg = finetune(
        smoke_config,
        workdir,
        pretrained.run_id,
        *nsl_kdd(shared_datasets),
        "privacy=dp",
        "privacy.noise_multiplier=1.0",
        "privacy.clipping=per_sample",
    )
    detector = make_detector(cfg, build_windows(cfg.data))
    module = detector.module
    optimizer = module.configure_optimizers()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = list(module.net.net.lstm.parameters())
    assert not optimized & {id(p) for p in frozen}  # frozen parameters never reach the DP optimizer
    before = [p.detach().clone() for p in frozen]
    windows, targets, _, _ = next(iter(detector.datamodule.loader("train", 32, shuffle=True)))
    optimizer.zero_grad()
    module.loss(module.net(windows), targets).backward()
    assert all(getattr(p, "grad_sample", None) is None for p in frozen)
    assert module.net.adapter.weight.grad_sample.shape[0] == 32
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, frozen, strict=True))


def test_dp_fine_tuning_runs_end_to_end_and_its_evaluation_reproduces_it(
    source, smoke_config, shared_datasets, mlflow_client
):
    workdir, pretrained = source
    cfg = finetune(
        smoke_config, workdir, pretrained.run_id, *nsl_kdd(shared_datasets), "privacy=dp", "privacy.target_epsilon=1"
    )
    result = train(cfg)
    assert result.privacy["epsilon"] <= 1.0
    run = mlflow_client(workdir).get_run(result.run_id)
    assert run.data.tags["twinids.transfer.source_run_id"] == pretrained.run_id
    artifacts = [a.path for a in mlflow_client(workdir).list_artifacts(result.run_id, "transfer")]
    assert artifacts == ["transfer/source_config.yaml"]
    assert evaluate(result.run_id, tracking_uri=cfg.tracking.uri).metrics == result.metrics


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("transfer.source=0123456789abcdef0123456789abcdef",), "transfer.source: no run"),
        (("transfer.freeze=[decoder]",), "transfer.freeze names 'decoder'"),
        (("model=lstm_sae_mha",), "fine-tune with model=lstm"),
        (("transfer.adapter=sometimes",), "transfer.adapter must be one of"),
    ],
)
def test_bad_transfer_settings_are_one_line_errors(source, smoke_config, overrides, message):
    workdir, pretrained = source
    base = [f"transfer.source={pretrained.run_id}"] if not overrides[0].startswith("transfer.source") else []
    cfg = smoke_config(workdir, "transfer=finetune", *base, *overrides)
    with pytest.raises(TwinIDSError, match=message):
        make_detector(cfg, build_windows(cfg.data))


def test_a_classical_or_private_source_is_refused(source, smoke_config):
    workdir, _ = source
    forest = train(smoke_config(workdir, "model=random_forest", "model.estimator.n_estimators=5"))
    private = train(smoke_config(workdir, *SMALL, "trainer.max_epochs=1", "privacy=dp", "privacy.noise_multiplier=1"))
    for checkpoint, message in [(forest.checkpoint, "only neural detectors"), (private.checkpoint, "privacy=dp")]:
        cfg = finetune(smoke_config, workdir, str(checkpoint))
        with pytest.raises(TwinIDSError, match=message):
            make_detector(cfg, build_windows(cfg.data))
