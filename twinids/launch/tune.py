"""`twinids tune`: Optuna search over a search space, each trial a training run under one MLflow parent run.

The study lives in an SQLite file (default `./mlruns/optuna.db`), so a stopped search resumes: a re-run
runs only the trials still missing from `n_trials`. Neural trials report their metric after every epoch and
poor ones are pruned (stopped early) by Optuna's median pruner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinids.errors import TwinIDSError, first_line, require_integer
from twinids.interrupts import JobInterrupted
from twinids.launch.search_space import SearchSpace, load_search_space
from twinids.launch.sweep_jobs import CONFIG_HASH_TAG, PARENT_TAG
from twinids.launch.sweep_runs import PRUNED_TAG

STUDY_TAG = "twinids.tune_study"
DEFAULT_STORAGE = Path("mlruns") / "optuna.db"
FINGERPRINT_ATTR = "twinids.fingerprint"


@dataclass(frozen=True)
class TuneSettings:
    """What to tune: a search space, extra fixed overrides, and where the study and the runs are stored."""

    search: str
    overrides: Sequence[str] = ()
    n_trials: int | None = None  # default: the search space's
    study_name: str | None = None  # default: <search>-<fingerprint of overrides and space>
    storage: str | None = None  # default: sqlite:///<cwd>/mlruns/optuna.db
    tracking_uri: str | None = None
    prune: bool = True


@dataclass(frozen=True)
class TrialOutcome:
    """One trial as it ended: COMPLETE, PRUNED or FAIL, its value, overrides and run."""

    number: int
    state: str
    overrides: list[str]
    value: float | None = None
    run_id: str | None = None
    message: str = ""

    def line(self) -> str:
        """`trial 3  COMPLETE  0.8123  lr=...  run <id>` for the command's output."""
        value = f"{self.value:.4f}" if self.value is not None else "—"
        run = f"  run {self.run_id}" if self.run_id else ""
        text = f"trial {self.number:>3}  {self.state:<8}  {value}  {' '.join(self.overrides)}{run}  {self.message}"
        return text.rstrip()


@dataclass(frozen=True)
class TuneSummary:
    """The study after this session: its name and storage, the parent run, and the best trial so far."""

    study_name: str
    storage: str
    parent_run_id: str
    metric: str
    trials: list[TrialOutcome] = field(default_factory=list)
    best_value: float | None = None
    best_overrides: list[str] = field(default_factory=list)


def run_tune(settings: TuneSettings, on_trial: Callable[[TrialOutcome], None] = lambda trial: None) -> TuneSummary:
    """Run the trials the study still lacks, tracked as child runs; return the best configuration found.

    Raises:
        TwinIDSError: for `n_trials` below 1, an unknown or invalid search space, keys not in the config, a study of
            the same name made from another space, an unusable storage URL, or a metric the runs never log.
        JobInterrupted: after a signal (the running trial's run ends KILLED and the trial FAIL).
    """
    import optuna

    from twinids.config import compose
    from twinids.launch.sweep_runs import earlier_parent
    from twinids.tracking.run import start_run
    from twinids.tracking.store import prepare_store, resolve_tracking_uri

    if settings.n_trials is not None:  # 0 is not "unset": it would run the space's trials
        require_integer(settings.n_trials, "--n-trials", 1)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_search_space(settings.search)
    base = [*space.overrides, *settings.overrides]
    cfg = compose(base)
    _check_keys(space, cfg)
    study_name = settings.study_name or f"{space.name}-{space.fingerprint(base)}"
    storage = settings.storage or _default_storage()
    study = _open_study(space, study_name, storage, space.fingerprint(base))  # a bad storage fails before the store
    uri = prepare_store(
        str(cfg.tracking.mlflow_experiment), resolve_tracking_uri(settings.tracking_uri or cfg.tracking.uri)
    )
    experiment = str(cfg.tracking.mlflow_experiment)
    wanted = space.n_trials if settings.n_trials is None else settings.n_trials
    ended = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    earlier = earlier_parent(uri, experiment, "tune", STUDY_TAG, study_name)
    tags = {"twinids.job": "tune", STUDY_TAG: study_name, "twinids.search": space.name}
    outcomes: list[TrialOutcome] = []
    with start_run(experiment, uri, None, tags, run_id=earlier) as parent:
        if earlier is None:
            params = {"tune.search": space.name, "tune.metric": space.metric, "tune.direction": space.direction}
            parent.log_params({**params, "tune.overrides": " ".join(base)[:6000], "tune.storage": storage})
        trials = _Trials(study, space, base, uri, parent.run_id, settings.prune)
        for _ in range(max(0, wanted - len(ended))):
            outcome = trials.run_one()
            outcomes.append(outcome)
            on_trial(outcome)
        best_value, best_overrides = _best(study)
        if best_value is not None:
            parent.log_metrics({"tune/best_value": best_value})
            parent.set_tags({"twinids.tune_best_overrides": " ".join(best_overrides)[:5000]})
            parent.log_text("\n".join(best_overrides) + "\n", "tune/best_overrides.txt")
    return TuneSummary(study_name, storage, parent.run_id, space.metric, outcomes, best_value, best_overrides)


def _default_storage() -> str:
    path = DEFAULT_STORAGE.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _check_keys(space: SearchSpace, cfg: object) -> None:
    """Every searched key must exist in the composed config (a typo would otherwise fail every trial)."""
    from omegaconf import OmegaConf

    for param in space.params:
        if OmegaConf.select(cfg, param.key, default="__absent__") == "__absent__":  # type: ignore[arg-type]
            raise TwinIDSError(f"{space.path}: params.{param.key} is not a key of the config these overrides compose")


def _open_study(space: SearchSpace, name: str, storage: str, fingerprint: str):
    """Create the study, or load it and check it was made from the same space and overrides."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    pruner = optuna.pruners.MedianPruner(**space.pruner) if space.pruner is not None else optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            load_if_exists=True,
            direction=space.direction,
            sampler=optuna.samplers.TPESampler(seed=space.sampler_seed),
            pruner=pruner,
        )
    except (ValueError, TypeError) as error:  # a direction unlike the stored study's, or a bad pruner setting
        raise TwinIDSError(f"study '{name}' in {storage}: {error}") from error
    except (SQLAlchemyError, ImportError, OSError) as error:  # an unknown scheme, a missing driver, no such folder
        raise TwinIDSError(
            f"cannot open the Optuna storage {storage} ({first_line(error)}); give --storage as a database URL, "
            "e.g. sqlite:///mlruns/optuna.db"
        ) from error
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
    elif stored != fingerprint:
        raise TwinIDSError(
            f"study '{name}' in {storage} was made from another search space or other overrides; "
            "pass --study with a new name, or the same overrides as before"
        )
    return study


@dataclass(frozen=True)
class _Trials:
    """Runs the trials of one study under one parent run."""

    study: Any
    space: SearchSpace
    base: list[str]
    uri: str
    parent_id: str
    prune: bool

    def run_one(self) -> TrialOutcome:
        """Ask for a trial, train it, and tell the study how it ended."""
        from optuna.trial import TrialState

        from twinids.config import compose
        from twinids.tracking.config_hash import config_hash
        from twinids.training.detector import detector_class
        from twinids.training.train import train

        trial = self.study.ask()
        overrides = [*self.base, *self.space.suggest(trial)]
        trial.set_user_attr("overrides", overrides)
        shown = overrides[len(self.base) :]
        pruning = None
        try:
            cfg = compose([*overrides, f"tracking.uri={self.uri}"])
            tags = {
                PARENT_TAG: self.parent_id,
                CONFIG_HASH_TAG: config_hash(cfg),
                "twinids.tune_trial": str(trial.number),
            }
            tags[STUDY_TAG] = self.study.study_name
            extra = {}
            if self.prune and self.space.pruner is not None and detector_class(cfg.model).supports.callbacks:
                from twinids.launch.pruning import TrialPruning

                pruning = TrialPruning(trial, self.space.metric)
                extra["extra_callbacks"] = [pruning]
            result = train(cfg, overrides, tags=tags, **extra)
        except (JobInterrupted, KeyboardInterrupt):
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as error:  # one bad trial (a refused setting, a crash) does not end the search
            self.study.tell(trial, state=TrialState.FAIL)
            text = str(error).strip().splitlines()
            return TrialOutcome(trial.number, "FAIL", shown, message=text[0] if text else type(error).__name__)
        trial.set_user_attr("run_id", result.run_id)
        try:
            value = _best_logged(self.uri, result.run_id, self.space, result.metrics)
        except TwinIDSError:
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        if pruning is not None and pruning.pruned:
            from mlflow.tracking import MlflowClient

            MlflowClient(self.uri).set_tag(result.run_id, PRUNED_TAG, "true")
            self.study.tell(trial, state=TrialState.PRUNED)
            message = f"at epoch {pruning.pruned_at_epoch}"
            return TrialOutcome(trial.number, "PRUNED", shown, value, result.run_id, message)
        self.study.tell(trial, value)
        return TrialOutcome(trial.number, "COMPLETE", shown, value, result.run_id)


def _best_logged(uri: str, run_id: str, space: SearchSpace, test_metrics: dict[str, float]) -> float:
    """The trial's value: the best of the metric over the run's epochs (the epoch whose checkpoint was kept)."""
    from mlflow.tracking import MlflowClient

    history = [m.value for m in MlflowClient(uri).get_metric_history(run_id, space.metric)]
    if not history and space.metric in test_metrics:
        history = [test_metrics[space.metric]]
    if not history:
        raise TwinIDSError(f"{space.path}: the runs never log metric '{space.metric}' (e.g. use val/f1_macro)")
    return max(history) if space.direction == "maximize" else min(history)


def _best(study) -> tuple[float | None, list[str]]:
    """The best complete trial's value and overrides, or (None, []) before any trial completed."""
    try:
        best = study.best_trial
    except ValueError:
        return None, []
    return best.value, list(best.user_attrs.get("overrides", []))
