"""`twinids export RUN_ID --format onnx`: a trained detector as a bundle onnxruntime runs without torch or the run.

The detector's window rule (`Exportable.scoring_graph`: the net and, for a one-class detector, its fitted scorer) is
traced by torch's dynamo exporter (`torch.onnx.export(dynamo=True)`, which needs onnxscript) with the batch and
sequence axes as `torch.export.Dim`s, so the graph takes any batch and any window length the detector's own rule
takes. The legacy TorchScript exporter (`dynamo=False`) was tried and not kept: on the LSTM and the hybrid its graphs
scored up to 0.03 away from torch. Before anything is written, the exported graph scores probe windows through the
same reader `twinids detect` uses and must agree with torch's `WindowRule.score` to 1e-5.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinids.errors import TwinIDSError, first_line
from twinids.stream.bundle import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    INPUT_NAME,
    MODEL_FILE,
    ONNX_EXTRA,
    OnnxScores,
)

FORMATS = ("onnx",)
TOLERANCE = 1e-5  # relative and absolute, as numpy.allclose: what the parity tests hold the graph to
PROBE_BATCHES = (1, 7)  # a batch of one (the stream's usual) and a batch size the trace never saw


def export_run(run_id: str, out: Path | None, fmt: str = "onnx", tracking_uri: str | None = None) -> Path:
    """Write the bundle of a run id or checkpoint path to `out` (default `exports/<run id>`); return the folder."""
    from twinids.stream.detect_job import load_run
    from twinids.tracking.config_hash import config_hash
    from twinids.tracking.run import temporary_directory

    if fmt not in FORMATS:
        raise TwinIDSError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    _require_exporter()
    with temporary_directory() as scratch:
        run = load_run(run_id, tracking_uri, Path(scratch))
    folder = out if out is not None else Path("exports") / (run.run_id or Path(run_id).stem)
    source = {"run_id": run.run_id, "model": str(run.cfg.model.name), "config_hash": config_hash(run.cfg)}
    return export_detector(run.detector, run.data, run.devices, source, folder)


def export_detector(detector: Any, data: Any, devices: list[str] | None, source: dict[str, Any], folder: Path) -> Path:
    """Write `model.onnx` and `bundle.json` of a loaded detector and the windows it was built for into `folder`."""
    from twinids.training.detector import require_exportable, require_streamable

    name = source.get("model", "?")
    graph = require_exportable(detector, name).scoring_graph()
    rule = require_streamable(detector, name).window_rule()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise TwinIDSError(f"--out {folder} already exists and is not an empty folder; name a new one")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _write_bundle(graph, rule, data, devices, source, folder)
    except BaseException:
        for written in (folder / MODEL_FILE, folder / BUNDLE_FILE):  # no half bundle left for detect to read
            written.unlink(missing_ok=True)
        raise
    return folder


def _write_bundle(graph: torch.nn.Module, rule: Any, data: Any, devices: Any, source: dict, folder: Path) -> None:
    """`model.onnx`, then `bundle.json`, then the graph's parity with torch read back as `twinids detect` reads it."""
    from twinids.stream.bundle import load_bundle

    dynamic_steps = write_onnx(graph, data.window, data.n_features, folder / MODEL_FILE)
    description = {
        "format": BUNDLE_FORMAT,
        "format_version": FORMAT_VERSION,
        "model": MODEL_FILE,
        "window": int(data.window),
        "dynamic_steps": dynamic_steps,
        "class_names": [str(c) for c in data.class_names],
        "smooth": int(rule.smooth),
        "threshold": None if rule.threshold is None else float(rule.threshold),
        "devices": devices,
        "encoder": data.encoder.state(),
        "source": {**source, "torch": torch.__version__.split("+")[0]},
    }
    (folder / BUNDLE_FILE).write_text(json.dumps(description, indent=1, allow_nan=False) + "\n")
    check_parity(rule.score, load_bundle(folder).rule.score, data.window, data.n_features)


def write_onnx(graph: torch.nn.Module, window: int, n_features: int, path: Path) -> bool:
    """Trace `graph` to an ONNX file with a dynamic batch axis and, where the graph allows it, a dynamic sequence
    axis; whether the written graph takes any sequence length (a scorer of a fixed number of steps, e.g. an
    autoencoder's, fixes it: torch.onnx then falls back to a graph of the traced length)."""
    example = torch.randn(4, window, n_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        names = list(graph(example))
    tupled = _Tupled(graph, names).eval()
    batch = torch.export.Dim("batch", min=1)
    for axes in ({0: batch, 1: torch.export.Dim("steps", min=1)}, {0: batch}):
        _forget_rnn_kernels()
        try:
            _trace(tupled, example, names, {INPUT_NAME: axes}, path)
            break
        except Exception as error:  # torch.export raises many types; a fixed sequence axis is the one retry
            if len(axes) == 1:
                raise TwinIDSError(f"torch could not export this detector to ONNX: {first_line(error)}") from None
    dynamic = _dynamic_axes(path)
    if 0 not in dynamic:
        raise TwinIDSError("torch exported this detector for a batch of 4 windows only; it cannot be bundled")
    return 1 in dynamic


def _forget_rnn_kernels() -> None:
    """Drop what the dispatcher cached for aten.lstm/gru, so torch.onnx's while-loop decomposition applies again.

    torch.onnx swaps a while-loop decomposition into these ops for dynamic sequence lengths, but (torch 2.13) does not
    clear their dispatch caches: a second export in the same process uses the cached unrolled decomposition and fixes
    the sequence length to the traced one. `_dispatch_cache` is private; tests/stream/test_export.py exports several
    detectors in one process and fails if this stops working.
    """
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        cache = getattr(op, "_dispatch_cache", None)
        if cache is not None:
            cache.clear()


def _dynamic_axes(path: Path) -> set[int]:
    """The axes of the written graph's input that take any size."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return {axis for axis, dim in enumerate(dims) if dim.dim_param}


def check_parity(torch_score: Any, onnx_score: Any, window: int, n_features: int) -> None:
    """Refuse a graph whose scores (and classes) on probe windows differ from torch's beyond `TOLERANCE`."""
    generator = np.random.default_rng(0)
    for batch in PROBE_BATCHES:
        windows = generator.standard_normal((batch, window, n_features)).astype(np.float32)
        expected, expected_classes = torch_score(windows)
        found, found_classes = onnx_score(windows)
        classes_differ = expected_classes is not None and not np.array_equal(expected_classes, found_classes)
        if not np.allclose(found, expected, rtol=TOLERANCE, atol=TOLERANCE) or classes_differ:
            gap = float(np.max(np.abs(found - expected)))
            raise TwinIDSError(
                f"the exported graph scores probe windows (batch {batch}) up to {gap:.3g} away from torch (tolerance "
                f"{TOLERANCE}){' and predicts other classes' if classes_differ else ''}: it is not the detector"
            )


def _trace(
    module: torch.nn.Module, example: torch.Tensor, names: list[str], dynamic_shapes: dict[str, Any], path: Path
) -> None:
    """One dynamo export of `module` to `path`, quietly (torch.onnx prints its progress and warns on CPU ops)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=names,
                dynamic_shapes=dynamic_shapes,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        finally:
            logging.getLogger("torch.onnx").setLevel(previous)


class _Tupled(torch.nn.Module):
    """A dict-returning scoring graph as a module returning its outputs in a fixed order (ONNX outputs are a list)."""

    def __init__(self, graph: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        # not `graph`: torch.export's GraphModule has a `graph` attribute of its own, and a submodule of that name
        # leaves the exported weights pointing at nothing
        self.scoring, self.names = graph, names

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.scoring(windows)
        return tuple(outputs[name] for name in self.names)


def _require_exporter() -> None:
    """onnx, onnxscript (torch's dynamo exporter needs it) and onnxruntime, or one line naming the extra."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise TwinIDSError(ONNX_EXTRA) from None


__all__ = ["FORMATS", "OnnxScores", "check_parity", "export_detector", "export_run", "write_onnx"]
