"""Neural detectors: the LightningModule the model config names, trained by a Lightning Trainer.

`privacy=dp` plugs DP-SGD (Opacus) into the same Trainer: Poisson-sampled training loader, DP optimiser,
ghost-clipping loss, accountant state in every checkpoint. Lightning's own loop, callbacks, checkpointing
and logging stay in use.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from twinids.config import build
from twinids.data.datamodule import WindowDataModule
from twinids.data.prepare import WindowedData
from twinids.errors import TwinIDSError
from twinids.models.build import build_net
from twinids.models.detector_module import DetectorModule
from twinids.training.checkpoint_io import TORCH_SUFFIX, load_torch_checkpoint, save_torch_checkpoint
from twinids.training.detector import JobContext, Supports, TestReport, WindowRule
from twinids.training.model_card import CARD_KEY, ModelCard
from twinids.training.trainer_settings import check_trainer_settings, planned_steps_per_epoch


class LightningDetector:
    """Builds `cfg.model.module` around `cfg.model.module.net`, sized to the data, and trains it with Lightning."""

    checkpoint_suffix = TORCH_SUFFIX
    supports = Supports(epochs=True, callbacks=True, privacy=True, transfer=True, resume=True)

    def __init__(self, cfg: DictConfig, data: WindowedData, training: bool = True) -> None:
        self.cfg = cfg
        name = f"model '{cfg.model.name}'"
        for key in ("batch_size", "eval_batch_size"):
            value = cfg.data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TwinIDSError(f"data.{key} must be an integer >= 1; got {value!r}")
        check_trainer_settings(cfg.trainer)
        self.select = _checkpoint_selection(cfg.callbacks, cfg.trainer)
        self.transfer_source: dict[str, Any] | None = None
        if cfg.transfer.name != "none":
            from twinids.training.transfer import transferred_net

            net, self.transfer_source = transferred_net(cfg, data)
        else:
            net = build_net(cfg.model.module.net, name, data.n_features, len(data.class_names))
        self.module = build(
            cfg.model.module,
            name,
            net=net,
            class_names=list(data.class_names),
            attack_names=list(data.attack_names),
            train_class_counts=data.class_counts("train").tolist(),
            _convert_="all",
        )
        _check_optimizer(self.module)
        self.datamodule = WindowDataModule(data, cfg.data.batch_size, cfg.data.eval_batch_size, cfg.data.num_workers)
        self.canary_audit = _canary_audit(cfg) if training else None
        self.input_canaries = self._add_input_canaries(data)
        self.privacy = self._plan_privacy(cfg, data) if training and cfg.privacy.name == "dp" else None
        self.step_canaries: Any = None  # WhiteBoxCanaries of a non-private run, made in fit
        self.epochs_trained = self.windows_trained = 0

    def _add_input_canaries(self, data: WindowedData) -> Any:
        """Black-box audit canaries (InputCanaries) join the training windows, before DP-SGD sizes its sampling
        rate on them."""
        audit = self.canary_audit
        if audit is None or not audit.count or audit.kind != "black_box":
            return None
        from twinids.privacy.canaries import InputCanaries

        if type(self.module).window_losses is DetectorModule.window_losses:
            raise TwinIDSError(
                _NO_WINDOW_LOSSES.format(module=type(self.module).__name__, reader="the black-box canary audit")
            )
        labels = np.flatnonzero(data.class_counts("train")).tolist()
        canaries = InputCanaries(audit.count, data.window, data.n_features, labels, audit.seed)
        self.datamodule.add_training_windows(*canaries.training_windows())
        return canaries

    def _plain_step_canaries(self) -> list[Any]:
        """White-box audit canaries in a non-private run: a callback adding them to each step's gradient."""
        audit = self.canary_audit
        if audit is None or not audit.count or audit.kind != "white_box" or self.privacy is not None:
            return []
        from twinids.privacy.canaries import WhiteBoxCanaries

        params = [p for p in self.module.parameters() if p.requires_grad]
        steps_per_epoch = len(self.datamodule.loader("train", self.cfg.data.batch_size, shuffle=False))
        # No clipping bound here and no noise: any gradient size C finds the canaries alike (1.0, as under DP), and
        # the summed residual counts each canary's joins exactly.
        self.step_canaries = WhiteBoxCanaries(
            params, audit.count, 1.0, 1 / steps_per_epoch, audit.seed, noise=0.0, score="sum"
        )
        return [self.step_canaries.callback()]

    def _plan_privacy(self, cfg: DictConfig, data: WindowedData) -> Any:
        """Check the DP settings against this model, trainer and data, and plan σ (all before any run)."""
        from twinids.privacy.dp_sgd import DPSGD
        from twinids.privacy.settings import DPSettings, refuse_trainer_settings_that_void_dp

        settings = DPSettings.from_config(cfg.privacy)
        refuse_trainer_settings_that_void_dp(cfg.trainer, settings)
        plain = self.datamodule.loader("train", cfg.data.batch_size, shuffle=True)
        privacy = DPSGD(
            settings,
            plain,
            planned_epochs=int(cfg.trainer.max_epochs),
            steps_per_epoch=planned_steps_per_epoch(cfg.trainer, len(plain)),
            seed=int(cfg.seed),
        )
        privacy.check_model(self.module.net)
        _check_single_optimizer(self.module)
        self.module.enable_privacy(privacy)
        self.datamodule.private_training_loader = privacy.training_loader
        return privacy

    def fit(self, data: WindowedData, job: JobContext, resume_from: Path | None = None) -> Path:
        """Train; return the checkpoint to test: the best on the validation monitor, or the last epoch's
        (`callbacks.select`)."""
        from hydra.utils import instantiate

        if resume_from is not None and self.canary_audit is not None and self.canary_audit.count:
            raise TwinIDSError(
                "a run with privacy.audit.canaries cannot be resumed: the canaries' scores of the steps before the "
                "stop are not in the checkpoint, so the audit would miss them; train it again from the start"
            )
        checkpointing = instantiate(self.cfg.callbacks.model_checkpoint, dirpath=job.run_dir / "checkpoints")
        callbacks = [checkpointing, ModelCardCallback(job.card), *job.callbacks, *self._plain_step_canaries()]
        if self.select == "best" and self.cfg.callbacks.early_stopping is not None:
            callbacks.insert(0, instantiate(self.cfg.callbacks.early_stopping))
        averaging = self.cfg.callbacks.get("weight_averaging")
        if averaging is not None and averaging.get("decay") is not None:
            callbacks.append(build(averaging, "callbacks.weight_averaging"))
        trainer = self._trainer(job, callbacks)
        try:
            trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=resume_from, weights_only=True)
        except SystemExit as stopped:
            from pytorch_lightning.utilities.exceptions import SIGTERMException

            if isinstance(stopped, SIGTERMException):  # Lightning's own SIGTERM handler stopped the loop
                from twinids.interrupts import stopped_by

                raise stopped_by(signal.SIGTERM) from None
            if trainer.interrupted:  # Lightning turns a bare KeyboardInterrupt into sys.exit(1): undo that
                raise KeyboardInterrupt from None
            raise
        finally:
            if self.privacy is not None and self.privacy.private is not None:
                self.privacy.private.module.cleanup()  # no more per-sample hooks after training
        self.epochs_trained = int(trainer.current_epoch)
        self.windows_trained = self.module.windows_trained
        if not checkpointing.best_model_path:
            raise TwinIDSError(
                f"training saved no checkpoint (is '{checkpointing.monitor}' logged, and did any epoch finish?); "
                "check trainer.max_epochs and trainer.limit_val_batches"
            )
        best = Path(checkpointing.best_model_path)
        last = Path(checkpointing.last_model_path or best)
        chosen = last if self.select == "last" else best
        self._audit_with_canaries(chosen, job)
        if self.privacy is not None:
            # A checkpoint may come from an early epoch, but the privacy spent is that of every step taken until
            # training stopped: the card of each checkpoint says so.
            job.card.privacy = self.privacy.summary()
            for path in {best, last}:
                checkpoint = load_torch_checkpoint(path)
                checkpoint[CARD_KEY] = job.card.to_dict()
                save_torch_checkpoint(checkpoint, path)
        return chosen

    def _audit_with_canaries(self, chosen: Path, job: JobContext) -> None:
        """Log the one-run audit (`audit/epsilon_lower`); under DP a lower bound above the claimed ε is a DP bug
        and fails the run. Black-box canaries are scored on the checkpoint the run releases."""
        audit = self.canary_audit
        if audit is None or not audit.count:
            return
        if self.input_canaries is not None:
            self.load(chosen)
            figures = self.input_canaries.audit(self._module_losses, audit.delta)
            steps = self.privacy.steps if self.privacy is not None else int(self.module.global_step)
        else:
            canaries = self.step_canaries if self.privacy is None else self.privacy.canaries
            figures = canaries.audit(audit.delta)  # type: ignore[union-attr]
            steps = int(figures["canary_steps"])
        job.run.log_metrics({"audit/epsilon_lower": figures["epsilon_lower"]}, step=steps)
        job.run.log_params({f"audit.{key}": int(value) for key, value in figures.items() if key != "epsilon_lower"})
        claimed = None if self.privacy is None else self.privacy.epsilon()
        if claimed is not None and figures["epsilon_lower"] > claimed:
            raise TwinIDSError(
                f"the privacy audit found ε ≥ {figures['epsilon_lower']:.3f} (95% confidence, "
                f"{int(figures['canaries'])} {audit.kind} canaries), above the ε = {claimed:.3f} the accountant "
                "claims: this DP-SGD run does not run the mechanism it accounts for"
            )

    def _module_losses(self, windows: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        """The loaded weights' per-window training loss on windows given whole (eval mode, in batches)."""
        batch = int(self.cfg.data.eval_batch_size)
        self.module.eval()
        try:
            with torch.no_grad():
                losses = [
                    self.module.window_losses(windows[first : first + batch], targets[first : first + batch])
                    for first in range(0, len(windows), batch)
                ]
        except NotImplementedError:
            raise TwinIDSError(
                _NO_WINDOW_LOSSES.format(module=type(self.module).__name__, reader="a membership-inference attack")
            ) from None
        return torch.cat(losses).numpy() if losses else np.zeros(0, dtype=np.float32)

    def load(self, checkpoint: Path) -> None:
        """Load the weights of a checkpoint into the module (plain-data load: nothing in it can run code)."""
        state = load_torch_checkpoint(checkpoint)["state_dict"]
        try:
            self.module.load_state_dict(state)
        except RuntimeError as error:
            raise TwinIDSError(
                f"{checkpoint} does not fit this model's shape ({str(error).splitlines()[0]}); evaluate with the "
                "model settings it was trained with"
            ) from None

    def test(self, data: WindowedData, job: JobContext) -> TestReport:
        """Test-split metrics of the loaded weights, logged through the run's Lightning logger."""
        trainer = self._trainer(job, [])
        results = trainer.test(self.module, datamodule=self.datamodule, verbose=False)
        metrics = {name: float(value) for name, value in results[0].items()}
        return TestReport(metrics, self.module.test_metrics.confusion().numpy())

    def window_losses(self, data: WindowedData, split: str, indices: np.ndarray) -> np.ndarray:
        """The loaded weights' training loss on the chosen windows of a split (eval mode: no dropout)."""
        windows = torch.from_numpy(data.rows[data.starts[split][indices][:, None] + np.arange(data.window)])
        targets = torch.as_tensor(data.targets[split][indices], dtype=torch.long)
        return self._module_losses(windows, targets)

    def alarm_score(self) -> Any:
        """The loaded module's alarm rule with a differentiable score (eval mode; weights frozen)."""
        from twinids.training.detector import AlarmScore

        if type(self.module).alarm_score is DetectorModule.alarm_score:
            raise TwinIDSError(f"{type(self.module).__name__} has no alarm_score (the iterative attack needs one)")
        self.module.eval()
        self.module.requires_grad_(False)
        smooth, threshold = self.module.alarm_rule()
        return AlarmScore(self.module.alarm_score, smooth, threshold)

    def window_rule(self) -> Any:
        """The loaded module's rule for windows one at a time (eval mode), as its test decides."""
        self.module.eval()
        smooth, threshold = self.module.window_decision()

        def score(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            return self.module.window_scores(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))

        return WindowRule(score, smooth, threshold)

    def scoring_graph(self) -> torch.nn.Module:
        """The loaded module's window scores, net and scorer, as one torch module (eval mode): what export traces."""
        self.module.eval()
        return _ScoringGraph(self.module)

    def privacy_summary(self) -> dict[str, Any] | None:
        """ε and the DP-SGD settings spent by the training run (None without privacy)."""
        return None if self.privacy is None else self.privacy.summary()

    def artifacts(self) -> dict[str, str]:
        """Text files to keep with the run: the transfer source's config, when one was read."""
        if self.transfer_source is None:
            return {}
        from omegaconf import OmegaConf

        return {"transfer/source_config.yaml": OmegaConf.to_yaml(OmegaConf.create(self.transfer_source))}

    def _trainer(self, job: JobContext, callbacks: list[Any]) -> Any:
        return build(
            self.cfg.trainer, "trainer", logger=job.run.logger, callbacks=callbacks, default_root_dir=str(job.run_dir)
        )


_NO_WINDOW_LOSSES = (
    "{module} defines no window_losses (DetectorModule.window_losses): {reader} needs each window's loss, so "
    "twinids cannot audit it"
)


def _canary_audit(cfg: DictConfig) -> Any:
    """The run's one-run audit settings (`privacy.audit`, checked), read where the privacy package is needed."""
    from twinids.privacy.audit_settings import CanaryAudit

    return CanaryAudit.from_config(cfg.privacy)


CHECKPOINT_SELECTIONS = ("best", "last")


def _checkpoint_selection(callbacks_cfg: Any, trainer_cfg: Any) -> str:
    """`callbacks.select`, checked: `last` lets no validation metric choose, so early stopping must never fire."""
    select = callbacks_cfg.get("select")
    if select not in CHECKPOINT_SELECTIONS:
        raise TwinIDSError(f"callbacks.select must be one of {list(CHECKPOINT_SELECTIONS)}; got {select!r}")
    stopping = callbacks_cfg.get("early_stopping")
    if select == "last":
        patience, epochs = (None if stopping is None else stopping.get("patience")), trainer_cfg.get("max_epochs")
        if patience is not None and isinstance(epochs, int) and patience < epochs:
            raise TwinIDSError(
                f"callbacks.select=last tests the last planned epoch, but early stopping with patience {patience} "
                f"could end training on a validation metric before epoch {epochs}; set callbacks.select=best to "
                "choose on validation data (under privacy=dp that data is outside what ε covers)"
            )
        if not callbacks_cfg.model_checkpoint.get("save_last"):
            raise TwinIDSError("callbacks.select=last needs callbacks.model_checkpoint.save_last=true")
    return str(select)


def _check_single_optimizer(module: Any) -> None:
    """DP-SGD privatises the one optimiser `DetectorModule.configure_optimizers` builds; refuse anything else."""
    optimizers = module.configure_optimizers()
    if type(module).configure_optimizers is not DetectorModule.configure_optimizers or not isinstance(
        optimizers, torch.optim.Optimizer
    ):
        raise TwinIDSError(
            f"{type(module).__name__} configures its own optimisers: with privacy=dp every parameter update must "
            "go through the one DP optimiser (a second optimiser, or one built outside "
            "DetectorModule.configure_optimizers, would take un-noised steps on private data)"
        )


def _check_optimizer(module: Any) -> None:
    """Build the optimiser once on a probe parameter, so bad settings (e.g. lr=-1) fail before any run."""
    probe = torch.nn.Parameter(torch.zeros(1))
    try:
        optimizer = module.optimizer_factory([probe])
    except (TypeError, ValueError) as error:
        raise TwinIDSError(f"model.module.optimizer: {str(error).splitlines()[0]}") from None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TwinIDSError("model.module.optimizer must build one torch optimiser (a `_partial_: true` node)")


class _ScoringGraph(torch.nn.Module):
    """A DetectorModule's `export_outputs` as a module's forward, so exporters trace net and scorer together."""

    def __init__(self, module: DetectorModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.module.export_outputs(windows)


class ModelCardCallback(pl.Callback):
    """Stores the model card in every checkpoint Lightning writes."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CARD_KEY] = self.card.to_dict()
