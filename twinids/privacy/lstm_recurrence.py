"""One LSTM layer-direction (projection and recurrence) as an autograd Function keeping its gate gradients.

The backward computes the gate pre-activation gradient of every step first; the per-sample gradients (or
their norms) need exactly that, the layer input and the previous hidden states, which it leaves in a
:class:`GateTrace` for the grad sampler. Parameter gradients are then one matrix product each over all
steps, and are skipped while Opacus's hooks are enabled when the caller says they are discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx


@dataclass
class GateTrace:
    """What one layer-direction leaves behind for its per-sample gradients, all time-major.

    Attributes:
        inputs: the layer input ``x_t`` the projection used, ``(T, B, I)``, set by forward.
        prev_hidden: ``h_{t-1}`` in processing order (``h_{t+1}`` for a reverse direction), ``(T, B, H)``.
        gate_grads: gradient of the loss w.r.t. the gate pre-activations, ``(T, B, 4H)``, set by backward.
    """

    inputs: Tensor | None = None
    prev_hidden: Tensor | None = None
    gate_grads: Tensor | None = None


@dataclass
class DirectionOptions:
    """The non-tensor arguments of :class:`LSTMLayerDirection`.

    Attributes:
        reverse: run the steps last to first.
        trace: receives the layer input, previous hidden states and gate gradients.
        on_filled: called after each backward has filled ``trace``.
        param_grads_discarded: asked at backward time; True skips the parameter gradients (only under
            Opacus, where the DP optimizer replaces or zeroes them).
    """

    reverse: bool = False
    trace: GateTrace | None = None
    on_filled: Callable[[], None] | None = None
    param_grads_discarded: Callable[[], bool] | None = None


class LSTMLayerDirection(torch.autograd.Function):
    """``(x, W_ih, b, h0, c0, W_hh, anchor) -> (hs, h_n, c_n)`` with a hand-written backward over time.

    ``x`` is time-major ``(T, B, I)``, ``b = b_ih + b_hh`` (or None), gate order i, f, g, o as in
    ``nn.LSTM``. The forward projects all steps with one matrix product and keeps the gate activations of
    every step; the backward runs the recurrence once in reverse with five ops per step. ``anchor``
    (optional) is not computed with and gets no gradient: depending on it only orders autograd.

    When traced (under Opacus), a second backward through the same graph whose incoming gradients are,
    sample by sample, ``r_b`` times the first one's (ghost clipping's second pass backpropagates
    ``sum_b c_b loss_b``) reuses the first pass's gate gradients times ``r_b`` instead of running the
    recurrence again (and its input gradient times ``r_b`` instead of a matrix product): backpropagation
    is linear in the incoming gradient and samples do not mix.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        x: Tensor,
        weight_ih: Tensor,
        bias: Tensor | None,
        h0: Tensor,
        c0: Tensor,
        weight_hh: Tensor,
        anchor: Tensor | None,
        options: DirectionOptions,
    ) -> tuple[Tensor, Tensor, Tensor]:
        steps, batch, _ = x.shape
        four_hidden = weight_ih.shape[0]
        hidden = four_hidden // 4
        x = x.contiguous()
        flat_x = x.view(steps * batch, x.shape[2])
        gates_x = (flat_x.mm(weight_ih.t()) if bias is None else torch.addmm(bias, flat_x, weight_ih.t())).view(
            steps, batch, four_hidden
        )
        # acts holds sigmoid(i), sigmoid(f), tanh(g), sigmoid(o) of every step: all the backward needs.
        acts = x.new_empty(steps, batch, four_hidden)
        cells = x.new_empty(steps, batch, hidden)
        tanh_cells = x.new_empty(steps, batch, hidden)
        hs = x.new_empty(steps, batch, hidden)
        pre = x.new_empty(batch, four_hidden)
        pre_g = pre[:, 2 * hidden : 3 * hidden]
        gate_i, gate_f, gate_g, gate_o = (g.unbind(0) for g in acts.view(steps, batch, 4, hidden).unbind(2))
        acts_t, gates_x_t = acts.unbind(0), gates_x.unbind(0)
        cells_t, tanh_cells_t, hs_t = cells.unbind(0), tanh_cells.unbind(0), hs.unbind(0)
        w_t = weight_hh.t()
        h, c = h0, c0
        for t in range(steps - 1, -1, -1) if options.reverse else range(steps):
            torch.addmm(gates_x_t[t], h, w_t, out=pre)
            torch.sigmoid(pre, out=acts_t[t])
            torch.tanh(pre_g, out=gate_g[t])
            torch.mul(gate_f[t], c, out=cells_t[t])
            cells_t[t].addcmul_(gate_i[t], gate_g[t])
            torch.tanh(cells_t[t], out=tanh_cells_t[t])
            torch.mul(gate_o[t], tanh_cells_t[t], out=hs_t[t])
            h, c = hs_t[t], cells_t[t]
        ctx.save_for_backward(x, weight_ih, h0, c0, weight_hh, acts, cells, tanh_cells, hs)
        ctx.options = options
        ctx.first_pass = None
        ctx.set_materialize_grads(False)
        if options.trace is not None:
            options.trace.inputs = x.detach()  # no grad_fn: the trace must not keep the graph alive
        return hs, h.clone(), c.clone()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: FunctionCtx, d_hs: Tensor | None, d_hn: Tensor | None, d_cn: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        x, weight_ih, h0, c0, weight_hh, acts, cells, tanh_cells, hs = ctx.saved_tensors
        options: DirectionOptions = ctx.options
        steps, batch, four_hidden = acts.shape
        incoming = (d_hs, d_hn, d_cn)
        needs = ctx.needs_input_grad
        first: _FirstPass | None = ctx.first_pass
        ratio = None if first is None else _per_sample_ratio(first.incoming, incoming)
        if ratio is not None:
            gate_grads = first.gate_grads * ratio.view(1, batch, 1)
            d_c0 = first.d_c0 * ratio.view(batch, 1)
            d_x = None if first.d_x is None else first.d_x * ratio.view(1, batch, 1)
        else:
            gate_grads, d_c0 = _backward_through_time(
                acts, cells, tanh_cells, c0, weight_hh, options.reverse, *incoming
            )
            d_x = None
        flat_grads = gate_grads.view(steps * batch, four_hidden)
        if d_x is None and needs[0]:
            d_x = flat_grads.mm(weight_ih).view(steps, batch, x.shape[2])
        if first is None and options.trace is not None:
            # Copies of what autograd receives or hands over: callers may modify those buffers.
            ctx.first_pass = _FirstPass(
                tuple(None if g is None else g.clone() for g in incoming),
                gate_grads,
                d_c0.clone(),
                None if d_x is None else d_x.clone(),
            )
        prev_hidden = _shift(hs, h0, options.reverse)
        if options.trace is not None:
            options.trace.prev_hidden = prev_hidden
            options.trace.gate_grads = gate_grads
            if options.on_filled is not None:
                options.on_filled()
        first_step = gate_grads[-1] if options.reverse else gate_grads[0]
        d_h0 = first_step.mm(weight_hh) if needs[3] else None
        d_c0 = d_c0 if needs[4] else None
        d_w_ih = d_bias = d_w_hh = None
        if options.param_grads_discarded is None or not options.param_grads_discarded():
            d_w_ih = flat_grads.t().mm(x.view(steps * batch, x.shape[2])) if needs[1] else None
            d_bias = flat_grads.sum(dim=0) if needs[2] else None
            d_w_hh = flat_grads.t().mm(prev_hidden.view(steps * batch, hs.shape[2])) if needs[5] else None
        return d_x, d_w_ih, d_bias, d_h0, d_c0, d_w_hh, None, None


@dataclass
class _FirstPass:
    """The first backward's incoming gradients and results, kept for a proportional second pass."""

    incoming: tuple[Tensor | None, Tensor | None, Tensor | None]
    gate_grads: Tensor
    d_c0: Tensor
    d_x: Tensor | None


def _backward_through_time(
    acts: Tensor,
    cells: Tensor,
    tanh_cells: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    reverse: bool,
    d_hs: Tensor | None,
    d_hn: Tensor | None,
    d_cn: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Gate pre-activation gradients ``(T, B, 4H)`` of every step and the gradient w.r.t. ``c0``."""
    steps, batch, four_hidden = acts.shape
    hidden = four_hidden // 4
    gate_i, gate_f, gate_g, gate_o = acts.view(steps, batch, 4, hidden).unbind(2)
    # Multipliers of dc (gates i, f, g) and of dh (gate o) for every step, formed once.
    mult = acts * (1 - acts)
    mult_v = mult.view(steps, batch, 4, hidden)
    mult_v[:, :, 0].mul_(gate_g)
    mult_v[:, :, 1].mul_(_shift(cells, c0, reverse))
    torch.mul(gate_i, 1 - gate_g * gate_g, out=mult_v[:, :, 2])
    mult_v[:, :, 3].mul_(tanh_cells)
    dc_from_dh = (gate_o * (1 - tanh_cells * tanh_cells)).unbind(0)
    mult_dc, mult_dh = mult_v[:, :, :3].unbind(0), mult_v[:, :, 3].unbind(0)
    forget = gate_f.unbind(0)

    gate_grads = acts.new_empty(steps, batch, four_hidden)
    grads_dc = gate_grads.view(steps, batch, 4, hidden)[:, :, :3].unbind(0)
    grads_dh = gate_grads.view(steps, batch, 4, hidden)[:, :, 3].unbind(0)
    grads_t = gate_grads.unbind(0)
    d_hs_t = d_hs.unbind(0) if d_hs is not None else None
    dc = d_cn if d_cn is not None else acts.new_zeros(batch, hidden)
    previous: Tensor | None = None
    for t in range(steps) if reverse else range(steps - 1, -1, -1):
        dh = d_hs_t[t] if d_hs_t is not None else None
        if previous is None and d_hn is not None:
            dh = d_hn if dh is None else dh + d_hn
        if previous is not None:
            dh = torch.mm(previous, weight_hh) if dh is None else torch.addmm(dh, previous, weight_hh)
        if dh is None:
            dh = acts.new_zeros(batch, hidden)
        dc = torch.addcmul(dc, dh, dc_from_dh[t])
        torch.mul(mult_dc[t], dc.unsqueeze(1), out=grads_dc[t])
        torch.mul(mult_dh[t], dh, out=grads_dh[t])
        dc = dc * forget[t]
        previous = grads_t[t]
    return gate_grads, dc


def _per_sample_ratio(
    first: tuple[Tensor | None, ...], second: tuple[Tensor | None, ...], tolerance: float = 1e-5
) -> Tensor | None:
    """``r`` with ``second[b] == r[b] * first[b]`` for every sample ``b`` (within rounding), else None.

    Tensors are ``(T, B, H)`` or ``(B, H)``; a None must be None in both passes.
    """
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if a is not None or b is not None]
    if not pairs or any(a is None or b is None for a, b in pairs):
        return None
    flat = [(a, b) if a.dim() == 3 else (a.unsqueeze(0), b.unsqueeze(0)) for a, b in pairs]
    cross = sum((a * b).sum(dim=(0, 2)) for a, b in flat)
    first_sq = sum((a * a).sum(dim=(0, 2)) for a, _ in flat)
    second_sq = sum((b * b).sum(dim=(0, 2)) for _, b in flat)
    ratio = torch.where(first_sq > 0, cross / first_sq.clamp(min=torch.finfo(first_sq.dtype).tiny), 0.0)
    r = ratio.view(1, ratio.shape[0], 1)
    residual = sum(torch.square(b - r * a).sum(dim=(0, 2)) for a, b in flat)
    if bool((residual > (tolerance**2) * second_sq).any()):
        return None
    return ratio


def _shift(states: Tensor, initial: Tensor, reverse: bool) -> Tensor:
    """The state each step started from: ``initial`` then ``states`` shifted one step along time."""
    if reverse:
        return torch.cat([states[1:], initial.unsqueeze(0)], dim=0)
    return torch.cat([initial.unsqueeze(0), states[:-1]], dim=0)
