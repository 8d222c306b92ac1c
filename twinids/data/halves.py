"""A random half of the training split, cut in blocks of readings: the data of a membership attack's shadow models.

A shadow model must not train on any reading of a window it is later "out" for, and windows overlap, so the half
is drawn over blocks of consecutive readings, not over windows: the kept windows are those lying wholly inside
a kept block, and no kept window shares a reading with a window lying wholly inside a dropped block.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from twinids.data.prepare import WindowedData
from twinids.errors import TwinIDSError

TRAIN = "train"


BLOCK_WINDOWS = 10  # a block is this many windows long unless data.train_half_block says otherwise


def training_half_block(block: int | None, window: int) -> int:
    """Readings per block: `data.train_half_block`, or BLOCK_WINDOWS windows when it is null."""
    return BLOCK_WINDOWS * window if block is None else block


def training_half(data: WindowedData, seed: int, block: int) -> WindowedData:
    """`data` with its training split cut to the windows inside a random half of the blocks of `block` readings
    (`seed` picks the half); validation and test windows are untouched.

    Raises:
        TwinIDSError: when a block is shorter than a window, or the half keeps no training window.
    """
    if block < data.window:
        raise TwinIDSError(
            f"data.train_half_block={block} is shorter than a window ({data.window} readings): no window would fit "
            "inside a block"
        )
    n_blocks = -(-len(data.rows) // block)
    kept_blocks = np.zeros(n_blocks, dtype=bool)
    kept_blocks[np.random.default_rng(seed).permutation(n_blocks)[: n_blocks // 2]] = True
    starts = data.starts[TRAIN]
    first, last = starts // block, (starts + data.window - 1) // block
    keep = (first == last) & kept_blocks[first]
    if not keep.any():
        raise TwinIDSError(f"data.train_half={seed} keeps no training window; use a larger data.train_half_block")
    return dataclasses.replace(
        data,
        starts={**data.starts, TRAIN: starts[keep]},
        targets={**data.targets, TRAIN: data.targets[TRAIN][keep]},
        attacks={**data.attacks, TRAIN: data.attacks[TRAIN][keep]},
        groups={**data.groups, TRAIN: data.groups[TRAIN][keep]} if TRAIN in data.groups else data.groups,
    )


def readings_read(data: WindowedData, split: str) -> np.ndarray:
    """A mask over the readings (rows): True where some window of `split` reads the reading."""
    starts = np.unique(data.starts[split])
    edges = np.zeros(len(data.rows) + data.window + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + data.window, -1)
    return np.cumsum(edges)[: len(data.rows)] > 0


def windows_touching(data: WindowedData, split: str, indices: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """For each chosen window of `split`, whether it reads any reading marked in the mask `readings`."""
    marked = np.concatenate([[0], np.cumsum(readings)])
    starts = data.starts[split][indices]
    return marked[starts + data.window] - marked[starts] > 0
