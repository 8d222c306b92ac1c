"""LSTM autoencoder: a pure nn.Module compressing a window to a latent vector and reconstructing it."""

from __future__ import annotations

import torch
from torch import nn

from twinids.errors import TwinIDSError


class LSTMAutoencoder(nn.Module):
    """Encodes a window (LSTM, last hidden state, linear latent) and decodes it back to every step.

    The decoder reads the latent vector repeated over time and maps its LSTM states to features. Trained
    on normal windows only, it reconstructs normal behaviour well and attacked windows badly; the residual
    (reading minus reconstruction) is what a scorer turns into an attack score. Layers are ``nn.LSTM``
    (``batch_first=True``) and ``nn.Linear`` only, and every loss is per window, so Opacus can train it.

    Args:
        n_features: features per time step.
        hidden_size: hidden units of the encoder and decoder LSTMs.
        num_layers: stacked layers in each LSTM.
        latent_size: size of the bottleneck vector per window.
        dropout: dropout between stacked layers and on the latent vector.

    All but ``n_features`` come from ``model.module.net`` (configs/model/lstm_autoencoder.yaml) and have no
    default here.
    """

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        latent_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        between_layers = dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(n_features, hidden_size, num_layers, dropout=between_layers, batch_first=True)
        self.to_latent = nn.Linear(hidden_size, latent_size)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.LSTM(latent_size, hidden_size, num_layers, dropout=between_layers, batch_first=True)
        self.to_features = nn.Linear(hidden_size, n_features)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the windows, shape (batch, time, n_features).

        Args:
            windows: (batch, time, n_features) scaled readings.

        Returns:
            The decoded readings of every step.

        Raises:
            TwinIDSError: if the windows are not (batch, time >= 1, n_features).
        """
        if windows.dim() != 3 or windows.shape[1] < 1 or windows.shape[-1] != self.n_features:
            raise TwinIDSError(
                f"LSTMAutoencoder expects windows of shape (batch, time >= 1, {self.n_features}), got "
                f"{tuple(windows.shape)}; build the net with n_features from the same data."
            )
        _, (h_n, _) = self.encoder(windows)
        latent = self.dropout(self.to_latent(h_n[-1]))
        repeated = latent.unsqueeze(1).expand(-1, windows.shape[1], -1)
        decoded, _ = self.decoder(repeated)
        return self.to_features(decoded)

    def residuals(self, windows: torch.Tensor) -> torch.Tensor:
        """Actual minus reconstructed readings, shape (batch, time, n_features)."""
        return windows - self(windows)

    def loss_per_window(self, windows: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error of each window, shape (batch,): the training loss before reduction."""
        return self.residuals(windows).square().mean(dim=(1, 2))
