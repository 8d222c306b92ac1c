"""Hybrid detector: LSTM encoder, sparse autoencoder on its states, self-attention over the codes, a head.

A pure ``nn.Module``: it returns logits and its unweighted per-window auxiliary losses; the LightningModule
weighs them. Every layer with weights is ``nn.LSTM`` (swapped for PrivateLSTM by ``make_private``) or
``nn.Linear`` on at most 3-D inputs, so Opacus computes per-sample gradients and ghost norms for all of them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from twinids.errors import TwinIDSError, require_integer
from twinids.models.lstm_sae_mha.sparse_autoencoder import SparseAutoencoder
from twinids.privacy.attention import MultiheadSelfAttention

POOLINGS = ("mean", "last", "max")


class LSTMSAEMHADetector(nn.Module):
    """Windows ``(batch, time, features)`` -> class logits, plus reconstruction and sparsity terms per window.

    LSTM states ``(batch, time, hidden_size)`` are encoded to sigmoid codes ``(batch, time, code_size)``
    and decoded back; multi-head self-attention runs over the time steps of the codes; the attended codes
    are pooled over time and a linear head gives the logits.

    Args:
        n_features: features per time step.
        n_classes: output classes.
        hidden_size: LSTM hidden units (the width the autoencoder reconstructs).
        num_layers: stacked LSTM layers.
        code_size: sparse code units (the attention width).
        heads: attention heads; must divide ``code_size``.
        sparsity: ``"kl"`` (KL divergence from ``sparsity_target``) or ``"l1"`` (mean absolute code).
        sparsity_target: target mean activation ρ of a code unit, in (0, 1).
        pooling: how attended codes become one vector per window: ``"mean"``, ``"last"`` or ``"max"`` over
            time steps.
        dropout: dropout between LSTM layers and before the head, in [0, 1).
        attention_dropout: dropout on the attention weights, in [0, 1).

    All but ``n_features`` and ``n_classes`` come from ``model.module.net`` (configs/model/lstm_sae_mha.yaml)
    and have no default here.

    Raises:
        TwinIDSError: for a setting outside the choices above, naming it.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden_size: int,
        num_layers: int,
        code_size: int,
        heads: int,
        sparsity: str,
        sparsity_target: float,
        pooling: str,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        require_integer(code_size, "model.module.net.code_size", 1)
        require_integer(heads, "model.module.net.heads", 1)
        if code_size % heads:
            raise TwinIDSError(
                f"heads={heads} must divide code_size={code_size}: attention splits the codes into equal "
                f"slices per head. Use heads in {[h for h in range(1, code_size + 1) if code_size % h == 0]} "
                "or change code_size."
            )
        if pooling not in POOLINGS:
            raise TwinIDSError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}.")
        if not 0.0 <= dropout < 1.0:
            raise TwinIDSError(f"dropout must be in [0, 1), got {dropout}.")
        self.pooling = pooling
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.autoencoder = SparseAutoencoder(hidden_size, code_size, sparsity, sparsity_target)
        self.attention = MultiheadSelfAttention(code_size, heads, dropout=attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(code_size, n_classes)

    def forward(self, windows: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits and the unweighted auxiliary losses of each window.

        Args:
            windows: ``(batch, time, features)``; ``batch`` may be 0.

        Returns:
            ``(logits, aux)``: logits ``(batch, n_classes)`` and ``aux`` with ``"reconstruction"`` and
            ``"sparsity"``, each ``(batch,)``, each depending on its own window only.
        """
        states, _ = self.lstm(windows)
        encoded = self.autoencoder(states)
        attended = self.attention(encoded.codes)
        logits = self.head(self.dropout(self._pool(attended)))
        return logits, {"reconstruction": encoded.reconstruction, "sparsity": encoded.sparsity}

    @torch.no_grad()
    def reconstruction_error(self, windows: Tensor) -> Tensor:
        """How badly the autoencoder reconstructs each window's LSTM states (an anomaly score).

        Runs in the module's current mode; call ``eval()`` first for deterministic scores.

        Args:
            windows: ``(batch, time, features)``.

        Returns:
            The mean squared reconstruction error per window ``(batch,)``, without gradient.
        """
        states, _ = self.lstm(windows)
        return self.autoencoder(states).reconstruction

    def _pool(self, attended: Tensor) -> Tensor:
        """``(batch, time, code_size)`` -> ``(batch, code_size)`` over each window's own time steps."""
        if self.pooling == "mean":
            return attended.mean(dim=1)
        if self.pooling == "last":
            return attended[:, -1]
        return attended.amax(dim=1)
