"""Benchmarks outside the tests (`twinids bench`): each figure against a baseline measured in the same run."""

from twinids.bench.dp_step import VARIANTS, measure_dp_step
from twinids.bench.pipeline import measure_inference, measure_loop_overhead, measure_startup, measure_windowing

__all__ = [
    "VARIANTS",
    "measure_dp_step",
    "measure_inference",
    "measure_loop_overhead",
    "measure_startup",
    "measure_windowing",
]
