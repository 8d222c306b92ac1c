"""Reading an exported detector bundle (`twinids export --format onnx`): the stream's detector on onnxruntime.

A bundle is a folder of two files: `model.onnx`, the detector's window -> raw score function (net and one-class scorer
in one graph), and `bundle.json`, everything else the stream needs as plain data (encoder state, window, classes,
smoothing, threshold, devices, source run). Nothing read here runs code from the files: JSON is data and an ONNX graph
is run by onnxruntime's own operators. The reader builds an encoder and a `WindowRule` and hands them to the same
`OnlineDetector` a run uses, so a bundle and its run decide the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError, first_line
from twinids.stream.online import OnlineDetector

BUNDLE_FORMAT = "twinids-onnx-bundle"
FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
MODEL_FILE = "model.onnx"
INPUT_NAME = "windows"
ONNX_EXTRA = "twinids export --format onnx and detecting on a bundle need the onnx extra: pip install 'twinids[onnx]'"


def import_onnxruntime() -> Any:
    """onnxruntime, or one error line naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise TwinIDSError(ONNX_EXTRA) from None
    return onnxruntime


class OnnxScores:
    """`WindowRule.score` through an onnxruntime session: windows (n, time, features) -> raw scores and classes.

    Args:
        model: the bundle's `model.onnx`.
        threads: onnxruntime intra-op threads (1 for a stream: one small window at a time, as `twinids detect` runs
            torch).
    """

    def __init__(self, model: Path, threads: int = 1) -> None:
        onnxruntime = import_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types for unreadable or invalid graphs
            reason = first_line(error)
            raise TwinIDSError(f"{model}: onnxruntime cannot load it ({reason}); export the run again") from None
        outputs = [output.name for output in self.session.get_outputs()]
        inputs = [item.name for item in self.session.get_inputs()]
        if inputs != [INPUT_NAME] or "score" not in outputs:
            raise TwinIDSError(
                f"{model} takes {inputs} and gives {outputs}; a twinids bundle's graph takes '{INPUT_NAME}' and gives "
                "'score': export the run again"
            )
        self.outputs = ["score", "predicted"] if "predicted" in outputs else ["score"]

    @property
    def names_classes(self) -> bool:
        """Whether the graph predicts a class per window (a classifier)."""
        return "predicted" in self.outputs

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw score (float64) and, for a classifier, the predicted class of each window."""
        try:
            found = self.session.run(self.outputs, {INPUT_NAME: np.ascontiguousarray(windows, dtype=np.float32)})
        except Exception as error:  # onnxruntime's own types: e.g. a length a fixed-length graph does not take
            reason = first_line(error)
            raise TwinIDSError(f"the bundle's graph cannot score windows of shape {windows.shape}: {reason}") from None
        return found[0].astype(np.float64), (found[1] if self.names_classes else None)


@dataclass(frozen=True)
class Bundle:
    """A read bundle: its description (`bundle.json`), the encoder it holds and the rule scoring on onnxruntime."""

    folder: Path
    description: dict[str, Any]
    encoder: Any
    rule: Any

    def online_detector(self) -> OnlineDetector:
        """The bundle behind an `OnlineDetector`, as `twinids detect` runs a run's detector."""
        meta = self.description
        return OnlineDetector(self.rule, self.encoder, meta["window"], meta["class_names"], meta["devices"])


def load_bundle(folder: Path, threads: int = 1) -> Bundle:
    """Read a bundle folder; any missing file, unreadable JSON or other format version is one error line."""
    from twinids.data.encoding import FeatureEncoder
    from twinids.training.detector import WindowRule

    if not folder.is_dir():
        raise TwinIDSError(f"{folder}: no such bundle folder (write one with `twinids export RUN_ID --out {folder}`)")
    description = read_description(folder / BUNDLE_FILE)
    model = folder / MODEL_FILE
    if not model.is_file():
        raise TwinIDSError(f"{model}: missing; the bundle is incomplete, export the run again")
    encoder = FeatureEncoder.from_state(description["encoder"])
    scores = OnnxScores(model, threads)
    threshold = description["threshold"]
    if (threshold is None) != scores.names_classes:
        raise TwinIDSError(
            f"{folder / BUNDLE_FILE}: threshold {threshold} does not fit a graph that "
            f"{'predicts' if scores.names_classes else 'does not predict'} classes; export the run again"
        )
    return Bundle(folder, description, encoder, WindowRule(scores, description["smooth"], threshold))


def read_description(path: Path) -> dict[str, Any]:
    """`bundle.json`, checked: its format and version, and the type of every field the stream reads."""
    if not path.is_file():
        raise TwinIDSError(f"{path}: missing; is {path.parent} a bundle written by `twinids export`?")
    try:
        description = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TwinIDSError(f"{path}: not valid JSON ({first_line(error)}); export the run again") from None
    if not isinstance(description, dict) or description.get("format") != BUNDLE_FORMAT:
        raise TwinIDSError(f"{path}: not a twinids bundle (its 'format' is not '{BUNDLE_FORMAT}')")
    version = description.get("format_version")
    if version != FORMAT_VERSION:
        raise TwinIDSError(
            f"{path}: bundle format version {version!r}, but this twinids reads version {FORMAT_VERSION}; export the "
            "run again with this twinids"
        )
    checks = {
        "window": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "smooth": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "threshold": lambda v: v is None or (isinstance(v, int | float) and math.isfinite(v)),
        "class_names": lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v),
        "devices": lambda v: v is None or (isinstance(v, list) and all(isinstance(d, str) for d in v)),
        "encoder": lambda v: isinstance(v, dict),
    }
    for key, valid in checks.items():
        if key not in description or not valid(description[key]):
            raise TwinIDSError(f"{path}: field '{key}' is missing or malformed ({description.get(key)!r})")
    return description
