"""Figures logged with runs."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Any:
    """A labelled confusion-matrix heat map (rows: true class, columns: predicted class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 2.5 + 0.6 * len(class_names)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    figure.tight_layout()
    return figure


def confusion_csv(matrix: np.ndarray, class_names: list[str]) -> str:
    """The confusion matrix as CSV text with a header of predicted classes."""
    lines = ["true\\predicted," + ",".join(class_names)]
    lines += [f"{name}," + ",".join(str(int(v)) for v in row) for name, row in zip(class_names, matrix, strict=True)]
    return "\n".join(lines) + "\n"
