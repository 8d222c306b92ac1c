"""PrivateLSTM: a drop-in for ``nn.LSTM`` whose per-sample gradients Opacus gets for all time steps at once.

Parameters carry the names and shapes of ``nn.LSTM`` (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), so
state dicts move both ways. Under Opacus the layer is one trainable module; its grad sampler and norm
sampler (``lstm_grad_sampler``) read the gate gradients that the recurrence left in a per-call trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twinids.errors import TwinIDSError
from twinids.privacy.lstm_recurrence import DirectionOptions, GateTrace, LSTMLayerDirection
from twinids.privacy.lstm_trace import ForwardTrace, TraceLog, alias_input_for_hook_order, gate_grads_filled


class PrivateLSTM(nn.Module):
    """``nn.LSTM(batch_first=True)`` with the same parameters, made for fast per-sample gradients.

    Args:
        input_size: features per time step.
        hidden_size: hidden units per direction.
        num_layers: stacked layers.
        bias: whether the layers carry ``bias_ih``/``bias_hh``.
        batch_first: must be True (windows are ``(batch, time, features)`` throughout twinids).
        dropout: dropout on every layer's output except the last, in training mode, as ``nn.LSTM``.
        bidirectional: run a reverse direction too; outputs are concatenated.
        proj_size: must be 0 (projections are not supported).

    Attributes:
        param_grads_discarded: optional callable asked during backward; when it returns True the layer
            skips its parameter gradients. ``privacy.engine.make_private`` sets it to "Opacus's hooks are
            enabled", when the DP optimizer replaces (per-sample mode) or zeroes (first pass of ghost
            clipping) those gradients anyway. None (the default) always computes them.
        loss_reduction: ``"mean"`` or ``"sum"``, the reduction Opacus was given (set by ``make_private``);
            needed only when Opacus hands the samplers an output gradient that is exactly zero, from which
            its scaling cannot be read. None (the default) makes that case an error.

    Raises:
        TwinIDSError: for ``batch_first=False``, ``proj_size > 0`` or a dropout outside [0, 1].
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        if not batch_first:
            raise TwinIDSError(
                "PrivateLSTM needs batch_first=True: Opacus reads the batch from the first dimension of "
                "the layer input. Pass windows as (batch, time, features)."
            )
        if proj_size:
            raise TwinIDSError("PrivateLSTM does not support proj_size > 0; use proj_size=0.")
        if not 0.0 <= dropout <= 1.0:
            raise TwinIDSError(f"PrivateLSTM dropout must be in [0, 1], got {dropout}.")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = True
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = _suffix(layer, direction)
                self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(4 * hidden_size, layer_input)))
                self.register_parameter(f"weight_hh{suffix}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
                if bias:
                    self.register_parameter(f"bias_ih{suffix}", nn.Parameter(torch.empty(4 * hidden_size)))
                    self.register_parameter(f"bias_hh{suffix}", nn.Parameter(torch.empty(4 * hidden_size)))
        self.reset_parameters()
        self._traces = TraceLog()
        self._input_is_order_anchor = False
        self.param_grads_discarded: Callable[[], bool] | None = None
        self.loss_reduction: str | None = None
        self.register_forward_pre_hook(alias_input_for_hook_order)

    def reset_parameters(self) -> None:
        """Initialise every weight uniformly in ``±1/sqrt(hidden_size)``, as ``nn.LSTM`` does."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def layer_parameters(self, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of one layer and direction (biases None if absent)."""
        suffix = _suffix(layer, direction)
        return (
            getattr(self, f"weight_ih{suffix}"),
            getattr(self, f"weight_hh{suffix}"),
            getattr(self, f"bias_ih{suffix}", None),
            getattr(self, f"bias_hh{suffix}", None),
        )

    def extra_repr(self) -> str:
        """The constructor arguments that differ from the defaults, as ``nn.LSTM`` prints them."""
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the stacked LSTM.

        Args:
            x: windows ``(batch, time, input_size)``, or one window ``(time, input_size)``.
            hx: optional ``(h_0, c_0)``, each ``(num_layers * directions, batch, hidden_size)``. Under
                Opacus pass it by keyword (Opacus records positional inputs as activations).

        Returns:
            ``(output, (h_n, c_n))`` exactly as ``nn.LSTM(batch_first=True)``: output is
            ``(batch, time, directions * hidden_size)``.
        """
        anchor = None
        if self._input_is_order_anchor:  # set by the pre-hook: x is an alias made only for hook order
            self._input_is_order_anchor = False
            anchor, x = x, x.detach()
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            hx = None if hx is None else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        directions = 2 if self.bidirectional else 1
        batch = x.shape[0]
        if hx is None:
            zeros = x.new_zeros(self.num_layers * directions, batch, self.hidden_size)
            hx = (zeros, zeros)
        trace = None
        if torch.is_grad_enabled() and self._backward_hooks:  # only Opacus needs the per-sample material
            shape = (batch, x.shape[1], directions * self.hidden_size)
            trace = ForwardTrace(shape, x.dtype, x.device)
        layer_input = x.transpose(0, 1)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                w_ih, w_hh, b_ih, b_hh = self.layer_parameters(layer, direction)
                options = DirectionOptions(reverse=direction == 1, param_grads_discarded=self.param_grads_discarded)
                if trace is not None:
                    options.trace = GateTrace()
                    options.on_filled = partial(gate_grads_filled, self, trace)
                    trace.gates.append(options.trace)
                state = layer * directions + direction
                hs, h_last, c_last = LSTMLayerDirection.apply(
                    layer_input,
                    w_ih,
                    None if b_ih is None else b_ih + b_hh,
                    hx[0][state],
                    hx[1][state],
                    w_hh,
                    anchor if layer == 0 else None,
                    options,
                )
                outputs.append(hs)
                h_n.append(h_last)
                c_n.append(c_last)
            layer_output = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_output = F.dropout(layer_output, p=self.dropout, training=True)
            layer_input = layer_output
        output = layer_input.transpose(0, 1).contiguous()
        if trace is not None:
            self._traces.add(trace, output)
        hidden = (torch.stack(h_n), torch.stack(c_n))
        if unbatched:
            return output.squeeze(0), (hidden[0].squeeze(1), hidden[1].squeeze(1))
        return output, hidden

    def __getstate__(self) -> dict:
        """Pickle without in-flight traces (they belong to a live graph) and without the Opacus link."""
        state = self.__dict__.copy()
        state["_traces"] = TraceLog()
        state["param_grads_discarded"] = None
        return state

    def pop_trace(self) -> ForwardTrace:
        """The newest forward call whose backward has filled all its gate gradients (for the samplers).

        Raises:
            RuntimeError: when no such call exists (the backward has not run through this layer yet).
        """
        return self._traces.pop_complete()


def _suffix(layer: int, direction: int) -> str:
    """``_l{layer}`` plus ``_reverse`` for the second direction, as ``nn.LSTM`` names parameters."""
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


def to_private_lstm(module: nn.Module) -> nn.Module:
    """Replace every trainable ``nn.LSTM`` inside ``module`` (or ``module`` itself) by a PrivateLSTM.

    The PrivateLSTM takes over the very same ``nn.Parameter`` objects, so values are kept and an optimizer
    built on the module beforehand keeps working. Modules are replaced in place; the (possibly new)
    root is returned. A frozen LSTM (no parameter requires grad, e.g. a pre-trained encoder during
    fine-tuning) stays an ``nn.LSTM``: it needs no per-sample gradients, and its fused kernel is faster.

    Raises:
        TwinIDSError: for an LSTM that PrivateLSTM cannot stand in for (batch_first=False, proj_size > 0).
    """
    if isinstance(module, nn.LSTM):
        trainable = any(p.requires_grad for p in module.parameters())
        return _private_from(module) if trainable else module
    for name, child in list(module.named_children()):
        replacement = to_private_lstm(child)
        if replacement is not child:
            setattr(module, name, replacement)
    return module


def _private_from(lstm: nn.LSTM) -> PrivateLSTM:
    """A PrivateLSTM with the configuration of ``lstm`` that shares its parameters."""
    if not lstm.batch_first:
        raise TwinIDSError(
            "to_private_lstm: this nn.LSTM has batch_first=False; build it with batch_first=True so the "
            "batch is the first dimension, as Opacus and twinids windows expect."
        )
    private = PrivateLSTM(
        lstm.input_size,
        lstm.hidden_size,
        num_layers=lstm.num_layers,
        bias=lstm.bias,
        dropout=lstm.dropout,
        bidirectional=lstm.bidirectional,
        proj_size=lstm.proj_size,
    )
    for name, parameter in lstm.named_parameters(recurse=False):
        setattr(private, name, parameter)
    private.train(lstm.training)
    return private
