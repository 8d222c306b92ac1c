"""Multi-head self-attention from four ``nn.Linear`` layers, so Opacus's per-sample gradients and ghost clipping apply.

It computes the same function as ``nn.MultiheadAttention(batch_first=True)`` used as self-attention. Opacus
ghost-clips only ``nn.Linear``/``nn.Embedding``; its validator refuses ``nn.MultiheadAttention`` and offers
``DPMultiheadAttention``, but in Opacus 1.6 ``DPMultiheadAttention(batch_first=True)`` folds heads into
time steps and refuses ``(time, time)`` masks (meta-pytorch/opacus#774). Every projection here sees
``(batch, time, dim)``, the widest input Opacus's Linear norm sampler handles.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twinids.errors import TwinIDSError


class MultiheadSelfAttention(nn.Module):
    """Scaled dot-product self-attention over the time steps of ``(batch, time, embed_dim)`` sequences.

    Args:
        embed_dim: features per time step, in and out.
        num_heads: attention heads; must divide ``embed_dim``.
        dropout: dropout on the attention weights in training mode, as ``nn.MultiheadAttention``.
        bias: whether the four projections carry biases.

    Raises:
        TwinIDSError: when ``num_heads`` does not divide ``embed_dim`` or ``dropout`` is outside [0, 1).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise TwinIDSError(
                f"attention heads={num_heads} must be a positive divisor of the attended width {embed_dim}: "
                "each head takes an equal slice of it. Pick heads from "
                f"{[h for h in range(1, embed_dim + 1) if embed_dim % h == 0]}."
            )
        if not 0.0 <= dropout < 1.0:
            raise TwinIDSError(f"attention dropout must be in [0, 1), got {dropout}.")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @classmethod
    def from_multihead_attention(cls, attention: nn.MultiheadAttention) -> MultiheadSelfAttention:
        """A copy of ``attention``'s weights (its ``in_proj_weight`` split into q, k, v) in this layout.

        Args:
            attention: an ``nn.MultiheadAttention`` with equal query/key/value widths and no extra k/v bias.

        Returns:
            A MultiheadSelfAttention computing the same self-attention, in ``attention``'s training mode.

        Raises:
            TwinIDSError: for a layout this module cannot represent (separate k/v widths, ``add_bias_kv``,
                ``add_zero_attn``).
        """
        same_widths = attention.kdim == attention.embed_dim == attention.vdim
        if not same_widths or attention.bias_k is not None or attention.add_zero_attn:
            raise TwinIDSError(
                "from_multihead_attention needs nn.MultiheadAttention with kdim = vdim = embed_dim, "
                "add_bias_kv=False and add_zero_attn=False."
            )
        bias = attention.in_proj_bias is not None
        copy = cls(attention.embed_dim, attention.num_heads, dropout=attention.dropout, bias=bias)
        copy = copy.to(attention.in_proj_weight.dtype)
        projections = (copy.q_proj, copy.k_proj, copy.v_proj)
        with torch.no_grad():
            for proj, weight in zip(projections, attention.in_proj_weight.chunk(3), strict=True):
                proj.weight.copy_(weight)
            copy.out_proj.weight.copy_(attention.out_proj.weight)
            if bias:
                for proj, b in zip(projections, attention.in_proj_bias.chunk(3), strict=True):
                    proj.bias.copy_(b)
                copy.out_proj.bias.copy_(attention.out_proj.bias)
        return copy.train(attention.training)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        """Attend every time step of ``x`` to every (unmasked) time step of the same sequence.

        Args:
            x: sequences ``(batch, time, embed_dim)``.
            key_padding_mask: optional ``(batch, time)``; bool True (or a float ``-inf``) marks a step no
                query may attend to, as in ``nn.MultiheadAttention``.
            attn_mask: optional ``(time, time)`` or ``(batch * num_heads, time, time)``; bool True forbids
                query ``i`` attending key ``j``, a float mask is added to the scores.

        Returns:
            ``(batch, time, embed_dim)``. A query whose keys are all masked gives NaN, as in PyTorch.
        """
        batch, steps, _ = x.shape
        q, k, v = (self._split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (batch, heads, time, time)
        if attn_mask is not None:
            mask = _additive(attn_mask, scores.dtype)
            scores = scores + (mask if mask.dim() == 2 else mask.view(batch, self.num_heads, steps, steps))
        if key_padding_mask is not None:
            scores = scores + _additive(key_padding_mask, scores.dtype)[:, None, None, :]
        weights = F.dropout(scores.softmax(dim=-1), p=self.dropout, training=self.training)
        heads = weights @ v  # (batch, heads, time, head_dim)
        return self.out_proj(heads.transpose(1, 2).flatten(2))

    def _split_heads(self, projected: Tensor) -> Tensor:
        """``(batch, time, embed_dim)`` -> ``(batch, heads, time, head_dim)``."""
        batch, steps, _ = projected.shape
        return projected.view(batch, steps, self.num_heads, self.head_dim).transpose(1, 2)


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A mask as scores to add: bool True becomes ``-inf``, a float mask is kept."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)
