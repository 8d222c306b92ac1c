"""The LightningDataModule serving windows from one encoded row array (no per-epoch copies)."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from twinids.data.prepare import WindowedData


class WindowDataset(Dataset):
    """Windows as start offsets into a shared (rows, features) tensor; a batch is gathered in one indexing op."""

    def __init__(self, rows: torch.Tensor, starts: np.ndarray, targets: np.ndarray, window: int) -> None:
        self.rows = rows
        self.starts = torch.as_tensor(starts, dtype=torch.long)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.offsets = torch.arange(window, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.starts[index])
        return self.rows[start : start + len(self.offsets)], self.targets[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once: (batch, window, features) windows and their targets."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.rows[self.starts[index, None] + self.offsets], self.targets[index]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate function for datasets whose `__getitems__` already returns a stacked batch."""
    return batch


class WindowDataModule(pl.LightningDataModule):
    """Serves the train/val/test windows of a WindowedData; shuffles training windows only."""

    def __init__(self, data: WindowedData, batch_size: int = 256, eval_batch_size: int = 2048, num_workers: int = 0):
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        rows = torch.from_numpy(data.rows)
        self.datasets = {
            split: WindowDataset(rows, data.starts[split], data.targets[split], data.window) for split in data.starts
        }

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=keep_batch,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training windows."""
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation windows in time order."""
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test windows in time order."""
        return self._loader("test", self.eval_batch_size, shuffle=False)
