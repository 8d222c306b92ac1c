"""Opacus grad sampler and norm sampler for PrivateLSTM: every time step in one contraction per weight.

For a weight used at every step, sample ``b``'s gradient is ``sum_t g_bt a_bt^T`` (gate gradients ``g``,
layer inputs or previous hidden states ``a``): one batched matrix product over time. Its squared norm is
``sum_{t,t'} (g_bt . g_bt') (a_bt . a_bt')`` (ghost norm), which needs only ``T x T`` Gram matrices. The
norm sampler takes whichever of the two is cheaper for the window length.
"""

from __future__ import annotations

import torch
from opacus.grad_sample import register_grad_sampler, register_norm_sampler
from torch import Tensor, nn

from twinids.privacy.lstm import PrivateLSTM
from twinids.privacy.lstm_recurrence import GateTrace


@register_grad_sampler(PrivateLSTM)
def compute_private_lstm_grad_sample(
    layer: PrivateLSTM, activations: list[Tensor], backprops: Tensor
) -> dict[nn.Parameter, Tensor]:
    """Per-sample gradients of every PrivateLSTM parameter, ``(batch, *param.shape)`` each.

    Args:
        layer: the PrivateLSTM whose backward just ran.
        activations: the layer inputs Opacus recorded (unused: the trace holds each layer's input).
        backprops: the output gradient as Opacus hands it (scaled by the batch size for a mean loss).

    Returns:
        A dict parameter -> per-sample gradient, for the parameters that require grad.
    """
    ret: dict[nn.Parameter, Tensor] = {}
    scale, pairs = _layer_directions(layer, backprops)
    for params, gates in pairs:
        g = gates.gate_grads.permute(1, 2, 0)  # (B, 4H, T)
        if scale != 1.0:
            g = g * scale
        w_ih, w_hh, b_ih, b_hh = params
        if w_ih.requires_grad:
            ret[w_ih] = torch.bmm(g, gates.inputs.transpose(0, 1))
        if w_hh.requires_grad:
            ret[w_hh] = torch.bmm(g, gates.prev_hidden.transpose(0, 1))
        if b_ih is not None and (b_ih.requires_grad or b_hh.requires_grad):
            bias_grad = g.sum(dim=2)
            for bias in (b_ih, b_hh):
                if bias.requires_grad:
                    ret[bias] = bias_grad
    return ret


@register_norm_sampler(PrivateLSTM)
def compute_private_lstm_norm_sample(
    layer: PrivateLSTM, activations: list[Tensor], backprops: Tensor
) -> dict[nn.Parameter, Tensor]:
    """Per-sample gradient norms of every PrivateLSTM parameter, ``(batch,)`` each, without the gradients.

    Args:
        layer: the PrivateLSTM whose backward just ran.
        activations: the layer inputs Opacus recorded (unused: the trace holds each layer's input).
        backprops: the output gradient as Opacus hands it (scaled by the batch size for a mean loss).

    Returns:
        A dict parameter -> per-sample L2 norm of its gradient, for the parameters that require grad.
    """
    ret: dict[nn.Parameter, Tensor] = {}
    scale, pairs = _layer_directions(layer, backprops)
    for params, gates in pairs:
        g = gates.gate_grads.transpose(0, 1)  # (B, T, 4H)
        gram_g = torch.bmm(g, g.transpose(1, 2))  # (B, T, T)
        w_ih, w_hh, b_ih, b_hh = params
        for weight, a in ((w_ih, gates.inputs), (w_hh, gates.prev_hidden)):
            if weight.requires_grad:
                ret[weight] = _weight_norms(g, gram_g, a.transpose(0, 1)) * abs(scale)
        if b_ih is not None and (b_ih.requires_grad or b_hh.requires_grad):
            bias_norm = gram_g.sum(dim=(1, 2)).clamp(min=0).sqrt() * abs(scale)
            for bias in (b_ih, b_hh):
                if bias.requires_grad:
                    ret[bias] = bias_norm
    return ret


def _weight_norms(g: Tensor, gram_g: Tensor, a: Tensor) -> Tensor:
    """``||sum_t g_bt a_bt^T||`` per sample, by Gram matrices or by the gradient, whichever costs less.

    Gram route: ``T^2 (G + A)`` multiply-adds per sample; gradient route: ``T G A`` (and a ``G x A``
    buffer per sample). Short windows take the first, long windows over narrow layers the second.
    """
    steps, gate_dim, in_dim = g.shape[1], g.shape[2], a.shape[2]
    if steps * (gate_dim + in_dim) <= gate_dim * in_dim:
        gram_a = torch.bmm(a, a.transpose(1, 2))
        return (gram_g * gram_a).sum(dim=(1, 2)).clamp(min=0).sqrt()
    return torch.bmm(g.transpose(1, 2), a).flatten(1).norm(dim=1)


def _layer_directions(
    layer: PrivateLSTM, backprops: Tensor
) -> tuple[float, list[tuple[tuple[Tensor, Tensor, Tensor | None, Tensor | None], GateTrace]]]:
    """Opacus's backprop scale, and each (layer, direction)'s parameters paired with its gate trace."""
    trace = layer.pop_trace()
    scale = backprop_scale(layer, backprops, trace.output_grad)
    directions = 2 if layer.bidirectional else 1
    keys = [(k, d) for k in range(layer.num_layers) for d in range(directions)]
    return scale, [(layer.layer_parameters(k, d), gates) for (k, d), gates in zip(keys, trace.gates, strict=True)]


def backprop_scale(layer: PrivateLSTM, backprops: Tensor, output_grad: Tensor | None) -> float:
    """The factor Opacus applied to the output gradient before handing it to the sampler.

    With ``loss_reduction="mean"`` Opacus multiplies the backprops by the batch size, so that per-sample
    gradients are those of each sample's own loss. The gate gradients in the trace come from autograd
    unscaled (and include what reached the layer through ``h_n``/``c_n``), so they need the same factor.
    It is read off the data: backprops against the raw output gradient at its largest entry (when the
    output got no gradient, :func:`~twinids.privacy.lstm_trace.gate_grads_filled` hands Opacus a gradient of
    ones for this). Only an output gradient that autograd made exactly zero says nothing; the reduction
    ``make_private`` recorded on the layer then tells.

    Raises:
        RuntimeError: if the factor is neither 1 nor the batch size, or cannot be told.
    """
    if output_grad is None:
        raise RuntimeError("PrivateLSTM: no output gradient was recorded for this forward call.")
    batch = float(backprops.shape[0])  # PrivateLSTM is batch-first, as Opacus's batch size is read
    if batch <= 1 or backprops.numel() == 0:
        return 1.0
    raw = output_grad.reshape(-1)
    largest = int(raw.abs().argmax())
    raw_value = float(raw[largest])
    if raw_value != 0.0:
        ratio = float(backprops.reshape(-1)[largest]) / raw_value
        for candidate in (1.0, batch):
            if abs(ratio - candidate) <= 1e-5 * candidate:
                return candidate
        raise RuntimeError(f"PrivateLSTM: Opacus scaled the output gradient by {ratio}, not 1 or {batch}.")
    if layer.loss_reduction in ("mean", "sum"):
        return batch if layer.loss_reduction == "mean" else 1.0
    raise RuntimeError(
        "PrivateLSTM: the output gradient is exactly zero, so how Opacus scaled it cannot be read off; set "
        "the layer's loss_reduction to the one given to Opacus (twinids.privacy.make_private does this)."
    )
