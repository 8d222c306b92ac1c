"""Classical baselines (scikit-learn) on flattened windows, scored with the same metrics as neural detectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinids.data.prepare import WindowedData
from twinids.training.metrics import confusion_matrix, detection_metrics

ESTIMATOR_FILE = "best.joblib"


def fit_estimator(estimator: Any, data: WindowedData) -> Any:
    """Fit a scikit-learn classifier on the flattened training windows."""
    windows = data.windows("train")
    estimator.fit(windows.reshape(len(windows), -1), data.targets["train"])
    return estimator


def score_estimator(estimator: Any, data: WindowedData, split: str) -> tuple[dict[str, float], np.ndarray]:
    """Metrics (named `<split>/...`) and confusion matrix of a fitted estimator on one split."""
    windows = data.windows(split)
    n_classes = len(data.class_names)
    probabilities = np.zeros((len(windows), n_classes), dtype=np.float32)
    probabilities[:, estimator.classes_] = estimator.predict_proba(windows.reshape(len(windows), -1))
    probabilities_t = torch.from_numpy(probabilities)
    targets = torch.from_numpy(data.targets[split])
    metrics = detection_metrics(n_classes, split)
    metrics.update(probabilities_t, targets)
    confusion = confusion_matrix(n_classes)
    confusion.update(probabilities_t.argmax(dim=1), targets)
    return {k: float(v) for k, v in metrics.compute().items()}, confusion.compute().numpy()


def save_estimator(estimator: Any, record: dict[str, Any], folder: Path) -> Path:
    """Write the fitted estimator with its run record (config, classes) to `folder/best.joblib`."""
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ESTIMATOR_FILE
    joblib.dump({"estimator": estimator, "twinids": record}, path)
    return path


def load_estimator(path: Path) -> Any:
    """The fitted estimator stored by save_estimator."""
    import joblib

    return joblib.load(path)["estimator"]
