"""Per-call bookkeeping between PrivateLSTM's backward and its Opacus samplers.

Each forward call under Opacus gets a :class:`ForwardTrace`; the autograd graph owns it (the module keeps
only weak references), the recurrence's backward fills it, and the sampler takes it. When the loss reaches
the layer only through ``(h_n, c_n)``, PyTorch never calls the module's full backward hooks (its output got
no gradient); :func:`gate_grads_filled` then calls them itself. When the layer input needs no gradient,
:func:`alias_input_for_hook_order` makes the hooks wait for the backward.

Both read torch's ``Module._backward_hooks`` (and ``_is_full_backward_hook``): torch has no public way to
list or call a module's hooks. Opacus's published grad-sampler contract, ``(module, activations,
backprops)``, carries only the gradient of the layer's first output, never that of ``(h_n, c_n)``; and
Opacus hooks the module that owns the parameters, which must be this one to keep ``nn.LSTM``'s parameter
names (Opacus's DPLSTM escapes this only because Opacus special-cases it by type). So the gate gradients
travel through the trace. tests/privacy/test_private_dependencies.py names each private part.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from twinids.privacy.lstm_recurrence import GateTrace


@dataclass
class ForwardTrace:
    """The per-sample gradient material of one forward call: one GateTrace per (layer, direction).

    Attributes:
        output_shape: shape of the layer's ``output`` (for a zero gradient when it received none).
        gates: the layer-directions in (layer, direction) order.
        output_grad: the gradient that reached ``output`` (as autograd computed it, before any scaling), or
            the probe :func:`gate_grads_filled` handed the hooks when none did.
        hooks_fired: whether this call's hooks were already called by :func:`gate_grads_filled`.
    """

    output_shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    gates: list[GateTrace] = field(default_factory=list)
    output_grad: Tensor | None = None
    hooks_fired: bool = False

    def complete(self) -> bool:
        """Whether the backward pass has filled every layer-direction's gate gradients."""
        return all(g.gate_grads is not None for g in self.gates)


class TraceLog:
    """One module's in-flight traces, by weak reference: a trace lives exactly as long as its graph."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref[ForwardTrace]] = []

    def add(self, trace: ForwardTrace, output: Tensor) -> None:
        """Track ``trace`` and record the gradient that reaches ``output``, if any does."""

        def keep_output_grad(grad: Tensor) -> None:
            trace.output_grad = grad

        if output.requires_grad:
            output.register_hook(keep_output_grad)
        self._refs = [ref for ref in self._refs if ref() is not None]
        self._refs.append(weakref.ref(trace))

    def pop_complete(self) -> ForwardTrace:
        """The newest trace whose gate gradients are all filled, removed from the log.

        Raises:
            RuntimeError: when there is none (the backward pass has not run through the layer yet).
        """
        for index in range(len(self._refs) - 1, -1, -1):
            trace = self._refs[index]()
            if trace is not None and trace.complete():
                del self._refs[index]
                return trace
        raise RuntimeError(
            "PrivateLSTM: per-sample gradients were requested before the backward pass reached the layer."
        )

    def __len__(self) -> int:
        """Number of traces whose graphs are still alive."""
        return sum(ref() is not None for ref in self._refs)


def gate_grads_filled(module: nn.Module, trace: ForwardTrace) -> None:
    """Called by the recurrence once it has filled a layer-direction's gate gradients.

    If the whole trace is filled and no gradient reached ``output`` (the loss uses only ``h_n``/``c_n``),
    PyTorch will not call the module's full backward hooks; call them here, once per forward call, so that
    Opacus samples the gradient that came through the final states. The output gradient handed to them is
    all ones, a probe: the samplers ignore its values and only read how Opacus scaled it (the loss
    reduction; see :func:`~twinids.privacy.lstm_grad_sampler.backprop_scale`).
    """
    if trace.hooks_fired or trace.output_grad is not None or not trace.complete():
        return
    if getattr(module, "_is_full_backward_hook", None) is not True:
        return
    trace.hooks_fired = True
    probe = torch.ones(trace.output_shape, dtype=trace.dtype, device=trace.device)
    trace.output_grad = probe
    for hook in list(module._backward_hooks.values()):
        hook(module, (None,), (probe, None))


def alias_input_for_hook_order(module: nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook of PrivateLSTM: make the input require grad when full backward hooks are attached.

    A full backward hook fires once the gradients w.r.t. the module inputs exist. If no input requires
    grad it fires as soon as the output gradient is known, before the recurrence's backward has run and
    left its gate gradients. A detached alias of the input that requires grad restores the order. The
    forward does not compute with the alias: it only hands it to the first layer's recurrence, whose
    backward returns no gradient for it, so the order costs no matrix product.
    """
    if not (module._backward_hooks and torch.is_grad_enabled() and args):
        return None
    x = args[0]
    if not isinstance(x, Tensor) or x.requires_grad or not x.is_floating_point():
        return None
    module._input_is_order_anchor = True
    return (x.detach().requires_grad_(True), *args[1:])
