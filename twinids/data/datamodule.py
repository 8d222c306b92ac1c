"""The LightningDataModule serving windows from one encoded row array (no per-epoch copies)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from twinids.data.prepare import WindowedData

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class WindowDataset(Dataset):
    """Windows as start offsets into a shared (rows, features) tensor; a batch is gathered in one indexing op.

    Items are (window, target, attack type index, group): the attack type lets tests report recall per attack
    type; the group (the window's run of one device, see WindowedData) keeps episodes within one device.
    """

    def __init__(
        self,
        rows: torch.Tensor,
        starts: np.ndarray,
        targets: np.ndarray,
        window: int,
        attacks: np.ndarray | None = None,
        groups: np.ndarray | None = None,
    ) -> None:
        self.rows = rows
        self.starts = torch.as_tensor(starts, dtype=torch.long)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.attacks = torch.as_tensor(attacks if attacks is not None else targets, dtype=torch.long)
        self.groups = torch.as_tensor(groups if groups is not None else np.zeros(len(starts)), dtype=torch.long)
        self.offsets = torch.arange(window, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> Batch:
        window = self.rows[int(self.starts[index]) : int(self.starts[index]) + len(self.offsets)]
        return window, self.targets[index], self.attacks[index], self.groups[index]

    def __getitems__(self, indices: list[int]) -> Batch:
        """A whole batch at once: (batch, window, features) windows, their targets, attack types and groups."""
        index = torch.as_tensor(indices, dtype=torch.long)
        windows = self.rows[self.starts[index, None] + self.offsets]
        return windows, self.targets[index], self.attacks[index], self.groups[index]


class WindowsWithExtras(Dataset):
    """A split's windows followed by extra windows given whole (an audit's canaries): same items, same batches."""

    def __init__(self, windows: WindowDataset, extra: torch.Tensor, extra_targets: torch.Tensor) -> None:
        self.windows, self.extra, self.extra_targets = windows, extra, extra_targets

    def __len__(self) -> int:
        return len(self.windows) + len(self.extra)

    def __getitem__(self, index: int) -> Batch:
        return tuple(part[0] for part in self.__getitems__([index]))  # type: ignore[return-value]

    def __getitems__(self, indices: list[int]) -> Batch:
        """The batch's own windows, then its extra ones (order within a batch does not matter to training)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        n = len(self.windows)
        own = self.windows.__getitems__(index[index < n].tolist())
        extra = index[index >= n] - n
        targets = self.extra_targets[extra]
        zeros = torch.zeros(len(extra), dtype=torch.long)
        return (
            torch.cat([own[0], self.extra[extra].to(own[0].dtype)]),
            torch.cat([own[1], targets]),
            torch.cat([own[2], targets]),
            torch.cat([own[3], zeros]),
        )


def keep_batch(batch: Batch) -> Batch:
    """Collate function for datasets whose `__getitems__` already returns a stacked batch."""
    return batch


class WindowDataModule(pl.LightningDataModule):
    """Serves the train/val/test windows of a WindowedData; shuffles training windows only.

    Args:
        data: the windows.
        batch_size: training batch size (under DP-SGD: the expected batch of Poisson sampling).
        eval_batch_size: batch size for validation and test.
        num_workers: DataLoader workers.
        private_training_loader: optional function turning the plain training loader into the one training
            uses (DP-SGD swaps in Poisson sampling); None serves shuffled batches.
    """

    def __init__(
        self,
        data: WindowedData,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int,
        private_training_loader: Callable[[DataLoader], DataLoader] | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.private_training_loader = private_training_loader
        rows = torch.from_numpy(data.rows)
        self.datasets = {
            split: WindowDataset(
                rows, data.starts[split], data.targets[split], data.window, data.attacks[split], data.groups[split]
            )
            for split in data.starts
        }

    def add_training_windows(self, windows: torch.Tensor, targets: torch.Tensor) -> None:
        """Train on these windows too (given whole, e.g. an audit's canaries); call before any loader is made."""
        self.datasets["train"] = WindowsWithExtras(self.datasets["train"], windows, targets)  # type: ignore[arg-type]

    def loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        """A plain loader over one split's windows."""
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=keep_batch,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training windows, or the private (Poisson-sampled) loader under DP-SGD."""
        plain = self.loader("train", self.batch_size, shuffle=True)
        return plain if self.private_training_loader is None else self.private_training_loader(plain)

    def val_dataloader(self) -> DataLoader:
        """Validation windows in time order."""
        return self.loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test windows in time order."""
        return self.loader("test", self.eval_batch_size, shuffle=False)
