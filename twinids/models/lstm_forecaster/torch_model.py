"""LSTM forecaster: a pure nn.Module predicting a window's last steps from the steps before them."""

from __future__ import annotations

import torch
from torch import nn

from twinids.errors import TwinIDSError, require_integer


class LSTMForecaster(nn.Module):
    """Reads the first ``T - horizon`` steps of a window and predicts its last ``horizon`` steps.

    Trained on normal windows only, it learns how the physical twin should evolve; the residual (reading
    minus forecast) is the deviation a scorer turns into an attack score. Layers are ``nn.LSTM``
    (``batch_first=True``) and ``nn.Linear`` only, and every loss is per window, so Opacus can train it.

    Args:
        n_features: features per time step.
        hidden_size: hidden units of the LSTM.
        num_layers: stacked LSTM layers.
        horizon: steps predicted at the end of each window (``model.module.net.horizon``).
        dropout: dropout between stacked layers and before the output layer.

    All but ``n_features`` come from ``model.module.net`` (configs/model/lstm_forecaster.yaml) and have no
    default here.

    Raises:
        TwinIDSError: if ``horizon`` is not an integer >= 1.
    """

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        horizon: int,
        dropout: float,
    ) -> None:
        super().__init__()
        require_integer(horizon, "model.module.net.horizon", 1)
        self.n_features = n_features
        self.horizon = horizon
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, horizon * n_features)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Forecast of the last ``horizon`` steps, shape (batch, horizon, n_features).

        Args:
            windows: (batch, time, n_features) scaled readings; time must exceed ``horizon``.

        Returns:
            The predicted readings of steps ``time - horizon`` .. ``time - 1``.

        Raises:
            TwinIDSError: if the windows are not (batch, time, n_features) or not longer than ``horizon``.
        """
        self._check(windows)
        history = windows[:, : -self.horizon]
        _, (h_n, _) = self.lstm(history)
        forecast = self.head(self.dropout(h_n[-1]))
        return forecast.unflatten(1, (self.horizon, self.n_features))

    def residuals(self, windows: torch.Tensor) -> torch.Tensor:
        """Actual minus predicted readings of the last ``horizon`` steps, shape (batch, horizon, n_features)."""
        return windows[:, -self.horizon :] - self(windows)

    def loss_per_window(self, windows: torch.Tensor) -> torch.Tensor:
        """Mean squared forecast error of each window, shape (batch,): the training loss before reduction."""
        return self.residuals(windows).square().mean(dim=(1, 2))

    def _check(self, windows: torch.Tensor) -> None:
        """Refuse windows whose shape cannot be forecast, naming the setting to change."""
        if windows.dim() != 3 or windows.shape[-1] != self.n_features:
            raise TwinIDSError(
                f"LSTMForecaster expects windows of shape (batch, time, {self.n_features}), got "
                f"{tuple(windows.shape)}; build the net with n_features from the same data."
            )
        if windows.shape[1] <= self.horizon:
            raise TwinIDSError(
                f"data.window ({windows.shape[1]}) must be longer than model.module.net.horizon ({self.horizon}): "
                "the forecaster predicts the last horizon steps from the steps before them. "
                "Raise data.window or lower model.module.net.horizon."
            )
