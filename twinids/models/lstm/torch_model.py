"""LSTM detector: a pure nn.Module mapping windows (batch, time, features) to class logits."""

from __future__ import annotations

import torch
from torch import nn


class LSTMDetector(nn.Module):
    """Stacked (optionally bidirectional) LSTM; the last layer's final hidden states feed a linear head.

    Kept free of training logic so Opacus can wrap it and pre-training and private fine-tuning share it.

    Args:
        n_features: features per time step (from the data).
        n_classes: output classes (from the data).
        hidden_size, num_layers, dropout, bidirectional: `model.module.net` (configs/model/lstm.yaml); no
            defaults here, so that a net built in a test is the net a user runs.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        bidirectional: bool,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(directions * hidden_size, n_classes)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for windows (batch, time, features)."""
        _, (h_n, _) = self.lstm(windows)
        directions = 2 if self.lstm.bidirectional else 1
        last_layer = h_n[-directions:]  # (directions, batch, hidden)
        summary = last_layer.transpose(0, 1).flatten(1)  # flatten(1), not reshape(batch, -1): batches may be empty
        return self.head(self.dropout(summary))
