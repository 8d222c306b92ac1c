"""The private parts of torch and Opacus that twinids.privacy still relies on: each is named here, with the file
that needs it and why no published API replaces it.

Opacus is pinned in pyproject.toml to the range these tests ran on. A release that changes one of these parts
fails here, naming it, instead of as a wrong per-sample gradient (a silent privacy bug) somewhere else.
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import opacus
import pytest
import torch
from opacus import GradSampleModule
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from packaging.requirements import Requirement
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from twinids.privacy import PrivateLSTM
from twinids.privacy.engine import make_private

OPACUS = f"opacus {opacus.__version__}"
TORCH = f"torch {torch.__version__}"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_opacus_is_inside_the_range_pyproject_pins():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(line) for line in dependencies if Requirement(line).name == "opacus"]
    assert pin.specifier.contains(opacus.__version__), (
        f"{OPACUS} is installed but pyproject.toml pins {pin}: the private parts tested in this module were "
        "checked only inside the pin. Run these tests on the new version, then move the pin."
    )


def test_torch_keeps_a_modules_full_backward_hooks_in_backward_hooks():
    """twinids/privacy/lstm.py and lstm_trace.py read ``_backward_hooks`` (is Opacus attached? which hooks to
    call?) and ``_is_full_backward_hook``: torch publishes registering hooks, not listing or calling them."""
    layer = nn.Linear(2, 2)

    def hook(module: nn.Module, grad_input: tuple, grad_output: tuple) -> None:
        return None

    layer.register_full_backward_hook(hook)
    assert getattr(layer, "_is_full_backward_hook", None) is True, (
        f"{TORCH} changed nn.Module._is_full_backward_hook: twinids/privacy/lstm_trace.py (gate_grads_filled) "
        "relies on it being True once a full backward hook is registered"
    )
    assert list(getattr(layer, "_backward_hooks", {}).values()) == [hook], (
        f"{TORCH} changed nn.Module._backward_hooks: twinids/privacy/lstm.py (forward) and lstm_trace.py "
        "(gate_grads_filled, alias_input_for_hook_order) rely on it mapping ids to the registered hooks"
    )


def test_torch_skips_full_backward_hooks_when_only_a_nested_output_gets_a_gradient():
    """Why gate_grads_filled calls the hooks itself: PrivateLSTM returns ``(output, (h_n, c_n))`` and torch
    wraps only top-level output tensors. Were torch to start calling the hooks here, Opacus would then
    sample the final-state gradient twice."""

    class OutputAndState(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
            return 2 * x, (3 * x,)

    module, calls = OutputAndState(), []
    module.register_full_backward_hook(lambda *args: calls.append(args))
    x = torch.randn(4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (state,) = module(x)
        state.sum().backward()
    assert calls == [], (
        f"{TORCH} now calls full backward hooks when only a nested output gets a gradient: "
        "twinids/privacy/lstm_trace.py (gate_grads_filled) calls them itself in that case and would double them"
    )


@pytest.mark.parametrize("wrapper", [GradSampleModule, GradSampleModuleFastGradientClipping])
def test_opacus_attaches_to_private_lstm_through_one_full_backward_hook(wrapper):
    lstm = PrivateLSTM(3, 4)
    wrapper(lstm)
    assert lstm._is_full_backward_hook is True and len(lstm._backward_hooks) == 1, (
        f"{OPACUS} changed how it hooks a layer with a registered grad sampler (expected one full backward "
        "hook): twinids/privacy/lstm_trace.py (gate_grads_filled) calls that hook when torch does not"
    )


def test_opacus_calls_the_hook_with_grad_output_as_the_backprops_it_hands_the_sampler():
    """gate_grads_filled calls Opacus's hook as ``hook(module, (None,), (probe, None))``; the sampler then
    reads the loss-reduction scale off the probe."""
    lstm = PrivateLSTM(3, 4)
    wrapped = GradSampleModule(lstm, loss_reduction="mean")
    _, (h_n, _) = wrapped(torch.randn(5, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h_n.sum().backward()  # only the final state: the output gets no gradient, twinids calls the hook
    assert all(p.grad_sample is not None and p.grad_sample.shape[0] == 5 for p in lstm.parameters()), (
        f"{OPACUS} changed its backward hook's arguments: twinids/privacy/lstm_trace.py (gate_grads_filled) "
        "calls it as hook(module, (None,), (grad_output, None))"
    )


@pytest.mark.parametrize("clipping", ["ghost", "per_sample"])
def test_opacus_hooks_enabled_follows_enable_and_disable_hooks(clipping):
    """twinids/privacy/engine.py (_link_private_lstms) reads ``hooks_enabled`` so that PrivateLSTM skips the
    parameter gradients the DP optimizer discards; Opacus publishes the setters but no getter."""
    model = nn.Sequential(nn.Linear(3, 2))
    loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,))), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            clipping=clipping,
            criterion=nn.CrossEntropyLoss(),
            wrap_model=False,
        )
    hooks = private.module
    seen = [getattr(hooks, "hooks_enabled", None)]
    hooks.disable_hooks()
    seen.append(hooks.hooks_enabled)
    hooks.enable_hooks()
    seen.append(hooks.hooks_enabled)
    assert seen == [True, False, True], (
        f"{OPACUS} changed {type(hooks).__name__}.hooks_enabled (saw {seen} for new, disabled, enabled): "
        "twinids/privacy/engine.py (_link_private_lstms) relies on it to skip discarded LSTM parameter gradients"
    )
