"""`train(cfg)`: the plain function behind `twinids train`, sweeps, reproduction and tests.

Data flows one way: config -> windows -> detector -> trainer -> tracker -> metrics returned. Every setting
the job reads is checked before its MLflow run exists, so a mistake leaves nothing half-written behind.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from twinids.errors import TwinIDSError
from twinids.training.job import JobResult


def train(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    *,
    tags: Mapping[str, str] | None = None,
    resume: Path | None = None,
    resume_run_id: str | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> JobResult:
    """Train the detector `cfg` describes, test its best checkpoint, and track everything in MLflow.

    Args:
        cfg: the composed config (see `twinids.config.compose`).
        overrides: the overrides that composed it (logged, and stored with the model).
        tags: extra MLflow tags (e.g. a sweep's parent run id).
        resume: a checkpoint (`last.ckpt`) to continue training from; its optimiser, loops, callbacks and
            privacy accountant are restored.
        resume_run_id: the MLflow run the resumed training continues.
        extra_callbacks: more Lightning callbacks for the training loop (e.g. a tuning trial's pruning);
            detectors without epochs ignore them.
    """
    from twinids.config import require_complete
    from twinids.data.registry import build_windows
    from twinids.tracking.config_hash import hash_tags
    from twinids.tracking.run import CHECKPOINT_ARTIFACT_DIR, start_run
    from twinids.tracking.store import check_store, resolve_tracking_uri, sqlite_database
    from twinids.training.detector import JobContext, make_detector
    from twinids.training.job import (
        check_job_settings,
        job_tags,
        log_confusion,
        log_privacy,
        prediction_spread,
        provenance,
        quiet_libraries,
        refuse_overrides_without_effect,
        unseen_attack_recall,
    )
    from twinids.training.model_card import ModelCard

    cfg = copy.deepcopy(cfg)  # the detector may record what it resolved (e.g. a transfer plan) in the config
    require_complete(cfg)
    refuse_overrides_without_effect(cfg, overrides)
    check_job_settings(cfg)
    if sqlite_database(resolve_tracking_uri(cfg.tracking.uri, create_folder=False)) is None:
        check_store(cfg.tracking.uri)  # a server or database that does not answer: refused before the data work
    hashed = hash_tags(cfg)  # config and repeat hash, of the config as composed, before a detector resolves anything
    data = build_windows(cfg.data)  # reads no global RNG; data mistakes surface before the slow Lightning import

    import pytorch_lightning as pl

    quiet_libraries()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    detector = make_detector(cfg, data)
    if resume is not None and not detector.supports.resume:
        raise TwinIDSError(f"model '{cfg.model.name}' trains in one pass; there is nothing to resume")

    run_tags = {**job_tags(cfg, "train"), **hashed, **provenance(cfg, data), **(tags or {})}
    with start_run(
        cfg.tracking.mlflow_experiment, cfg.tracking.uri, cfg.run_name, run_tags, run_id=resume_run_id
    ) as run:
        if resume_run_id is None:
            run.log_config(cfg, list(overrides))
            for artifact, text in detector.artifacts().items():
                run.log_text(text, artifact)
            run.log_metrics({f"data/{split}_windows": float(len(s)) for split, s in data.starts.items()})
        card = ModelCard.describe(cfg, list(overrides), data, run.run_id)
        job = JobContext(run, card, Path(cfg.paths.output_dir).resolve() / run.run_id, list(extra_callbacks))
        began = time.perf_counter()
        checkpoint = detector.fit(data, job, resume_from=resume)
        fitted = time.perf_counter()
        detector.load(checkpoint)
        report = detector.test(data, job)
        tested = time.perf_counter()
        privacy = detector.privacy_summary()
        log_privacy(run, privacy)
        if privacy is not None:
            run.set_tags(job_tags(cfg, "train", privacy))
        log_confusion(run, report.confusion, data.class_names)
        spread, single_class = prediction_spread(report.confusion, data.class_names)
        unseen, unseen_types = unseen_attack_recall(report.metrics, data)
        run.log_metrics({**spread, **unseen})
        run.set_tags({**single_class, **unseen_types})
        timings = {"fit_s": fitted - began, "test_s": tested - fitted, "epochs": float(detector.epochs_trained)}
        timings["train_windows_per_s"] = detector.windows_trained / timings["fit_s"]
        run.log_metrics({f"time/{name}": value for name, value in timings.items()})
        if cfg.tracking.log_checkpoint:
            run.log_file(checkpoint, CHECKPOINT_ARTIFACT_DIR)
    metrics = {**report.metrics, **spread, **unseen}
    return JobResult(metrics, run.run_id, checkpoint, data.class_names, report.confusion, privacy, timings)
