"""MultiheadSelfAttention computes nn.MultiheadAttention's function, and Opacus gets its per-sample gradients
and ghost norms through its nn.Linear projections."""

from __future__ import annotations

import warnings

import pytest
import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.layers import DPMultiheadAttention
from opacus.utils.per_sample_gradients_utils import check_per_sample_gradients_are_correct
from torch import nn

from twinids.errors import TwinIDSError
from twinids.privacy.attention import MultiheadSelfAttention

BATCH, STEPS, WIDTH, HEADS = 3, 6, 8, 2


def _torch_attention(bias: bool = True) -> nn.MultiheadAttention:
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(WIDTH, HEADS, bias=bias, batch_first=True, dtype=torch.double)
    if bias:  # PyTorch initialises the biases to zero; random ones check that they are copied too
        nn.init.normal_(attention.in_proj_bias)
        nn.init.normal_(attention.out_proj.bias)
    return attention.eval()


def _padding() -> torch.Tensor:
    padded = torch.zeros(BATCH, STEPS, dtype=torch.bool)
    padded[0, -2:] = True  # trailing steps of two windows are padding; step 0 is never masked
    padded[2, -1] = True
    return padded


def _causal() -> torch.Tensor:
    return torch.ones(STEPS, STEPS, dtype=torch.bool).triu(diagonal=1)


MASKS = {
    "no mask": {},
    "key padding": {"key_padding_mask": _padding()},
    "causal (time, time)": {"attn_mask": _causal()},
    "float (time, time)": {
        "attn_mask": torch.randn(STEPS, STEPS, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    },
    "causal and key padding": {"attn_mask": _causal(), "key_padding_mask": _padding()},
    "per head (batch*heads, time, time)": {
        "attn_mask": (torch.rand(BATCH * HEADS, STEPS, STEPS, generator=torch.Generator().manual_seed(2)) < 0.3)
        & ~torch.eye(STEPS, dtype=torch.bool)  # every query keeps at least itself
    },
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", MASKS.values(), ids=MASKS.keys())
def test_it_computes_the_same_function_as_nn_multihead_attention_with_copied_weights(masks, bias):
    reference = _torch_attention(bias)
    attention = MultiheadSelfAttention.from_multihead_attention(reference)
    x = torch.randn(BATCH, STEPS, WIDTH, dtype=torch.double)
    expected, _ = reference(x, x, x, need_weights=False, **masks)
    torch.testing.assert_close(attention(x, **masks), expected)


def test_copied_projections_are_the_rows_of_in_proj_weight_in_q_k_v_order():
    reference = _torch_attention()
    attention = MultiheadSelfAttention.from_multihead_attention(reference)
    stacked = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight])
    torch.testing.assert_close(stacked, reference.in_proj_weight)


def test_an_empty_batch_gives_an_empty_output():
    attention = MultiheadSelfAttention(WIDTH, HEADS)
    assert attention(torch.randn(0, STEPS, WIDTH)).shape == (0, STEPS, WIDTH)


@pytest.mark.parametrize("heads", [3, 0])
def test_heads_that_do_not_divide_the_width_are_refused_naming_the_setting(heads):
    with pytest.raises(TwinIDSError, match=f"heads={heads} must be a positive divisor"):
        MultiheadSelfAttention(WIDTH, heads)


@pytest.mark.parametrize("layout", [dict(add_bias_kv=True), dict(add_zero_attn=True), dict(kdim=4), dict(vdim=4)])
def test_a_torch_layout_it_cannot_represent_is_refused(layout):
    with pytest.raises(TwinIDSError, match="add_bias_kv=False"):
        MultiheadSelfAttention.from_multihead_attention(nn.MultiheadAttention(WIDTH, HEADS, **layout))


class _Masked(nn.Module):
    """Attention with a causal mask and dropout-free, as Opacus's checker runs it (output = model output)."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = MultiheadSelfAttention(WIDTH, HEADS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, attn_mask=_causal())


def test_per_sample_gradients_of_the_projections_match_the_microbatch_reference():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Opacus's checker: each sample through plain autograd vs its Linear grad sampler on (batch, time, dim).
        windows = torch.randn(4, STEPS, WIDTH, dtype=torch.double)
        assert check_per_sample_gradients_are_correct(windows, _Masked().double())


def test_ghost_norms_of_the_projections_equal_the_norms_of_per_sample_gradients():
    torch.manual_seed(0)
    model = _Masked().double()
    x = torch.randn(4, STEPS, WIDTH, dtype=torch.double)
    targets = torch.randn(4, STEPS, WIDTH, dtype=torch.double)
    losses = (model(x) - targets).square().sum(dim=(1, 2))
    expected = {}
    for name, parameter in model.named_parameters():
        rows = [torch.autograd.grad(losses[b], parameter, retain_graph=True)[0].norm() for b in range(4)]
        expected[name] = torch.stack(rows)
    wrapped = GradSampleModuleFastGradientClipping(model, loss_reduction="sum", use_ghost_clipping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # x needs no grad: PyTorch's note on when the backward hook fires
        (wrapped(x) - targets).square().sum().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter._norm_sample, expected[name], msg=name)


def test_opacus_dp_multihead_attention_with_batch_first_is_not_this_function():
    """Why twinids has its own: Opacus 1.6's DPMultiheadAttention(batch_first=True) folds heads into time
    steps and refuses a (time, time) mask (meta-pytorch/opacus#774). If this starts failing, Opacus fixed it."""
    reference = _torch_attention()
    opacus_attention = DPMultiheadAttention(WIDTH, HEADS, batch_first=True).double().eval()
    opacus_attention.load_state_dict(reference.state_dict())
    x = torch.randn(BATCH, STEPS, WIDTH, dtype=torch.double)
    expected, _ = reference(x, x, x)
    assert not torch.allclose(opacus_attention(x, x, x)[0], expected)
    with pytest.raises(ValueError, match="2D attn_mask"):
        opacus_attention(x, x, x, attn_mask=_causal())
