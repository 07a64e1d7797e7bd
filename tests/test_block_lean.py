"""The lean forward (one addmm with the add in it, on views in the feature map's layout) against
the reference forward it replaced (tests/reference_block.py): values and gradients, in every
memory format and dtype the block meets, and what it costs in ops and bytes."""

import copy

import pytest
import torch
from torch import nn

from srblock import SqueezeRemember, add_sr, sr_bypassed
from srblock.block import diversity_loss
from srblock.memory import drain, recorded_weights
from srblock.profile import profile_block
from srblock.spec import SRSpec

from .reference_block import reference_forward, reference_weights

CL = torch.channels_last


def filled(channels=16, size=(4, 4), memory_blocks=3, **kw) -> SqueezeRemember:
    torch.manual_seed(0)
    block = SqueezeRemember(channels, size, SRSpec(memory_blocks=memory_blocks, **kw))
    with torch.no_grad():
        block.memory.normal_()
        if block.log_temperature is not None:
            block.log_temperature.fill_(-0.4)
    return block


def run(block: nn.Module, x: torch.Tensor, forward, dtype=None, grad=None):
    """Output and the gradients of x and of every parameter, for one forward and backward."""
    block.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = forward(block, x)
    out.backward(grad if grad is not None else torch.ones_like(out))
    grads = {"x": x.grad, **{n: p.grad for n, p in block.named_parameters()}}
    return out, grads


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    """Relative error of the whole tensor (float64), as METHOD-style checks measure it."""
    a, b = a.double(), b.double()
    assert torch.isfinite(a).all()
    error = (a - b).norm() / b.norm().clamp_min(1e-30)
    assert error <= tol, f"relative error {error:.2e} > {tol:.0e}"


FORMATS = {  # (block's memory format, x's memory format)
    "contiguous": (torch.contiguous_format, torch.contiguous_format),
    "channels_last": (CL, CL),
    "x channels_last, block not": (torch.contiguous_format, CL),
    "block channels_last, x not": (CL, torch.contiguous_format),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("memory_blocks", [1, 3])
@pytest.mark.parametrize(
    "temperature", [dict(), dict(temperature=0.5), dict(temperature=2.0, learn_temperature=True)]
)
def test_float32_values_and_gradients_equal_the_reference(fmt, memory_blocks, temperature):
    block_fmt, x_fmt = FORMATS[fmt]
    block = filled(memory_blocks=memory_blocks, **temperature).to(memory_format=block_fmt)
    x = torch.randn(5, 16, 4, 4).contiguous(memory_format=x_fmt)
    grad = torch.randn(5, 16, 4, 4)
    lean, lean_grads = run(block, x, SqueezeRemember.forward, grad=grad)
    ref, ref_grads = run(block, x, reference_forward, grad=grad)
    torch.testing.assert_close(lean, ref, rtol=1e-5, atol=1e-6)
    assert lean.is_contiguous(memory_format=x_fmt)  # the map keeps its layout
    for name in ref_grads:
        torch.testing.assert_close(lean_grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
@pytest.mark.parametrize(
    "case", ["bf16 autocast, bf16 map", "bf16 autocast, float32 map", "bf16 module", "float16 autocast"]
)
def test_low_precision_stays_within_its_tolerance_of_float64(fmt, case):
    """Each precision against the block in float64: bf16 operands land between 1e-3 and 1e-2."""
    block_fmt, x_fmt = FORMATS[fmt]
    block = filled(channels=32, size=(6, 6)).to(memory_format=block_fmt)
    x = torch.randn(8, 32, 6, 6)
    grad = torch.randn_like(x)
    exact, exact_grads = run(
        copy.deepcopy(block).double(), x.double(), SqueezeRemember.forward, grad=grad.double()
    )
    if case == "bf16 module":
        block, x, dtype = block.to(torch.bfloat16), x.to(torch.bfloat16), None
    else:
        dtype = torch.float16 if case.startswith("float16") else torch.bfloat16
        x = x if "float32 map" in case else x.to(dtype)
    out, grads = run(
        block, x.contiguous(memory_format=x_fmt), SqueezeRemember.forward, dtype, grad.to(x.dtype)
    )
    assert out.dtype == x.dtype  # the map's dtype in, the same out
    close(out, exact, 1e-2)
    for name in ("x", "memory", "fc2.weight", "squeeze.weight"):
        close(grads[name], exact_grads[name], 3e-2)


def test_a_float32_map_under_autocast_is_not_rounded():
    """A float32 map under bf16 autocast keeps its float32 digits: with zero memory, exactly."""
    block = SqueezeRemember(16, (4, 4), SRSpec(memory_blocks=3))
    x = torch.randn(2, 16, 4, 4) * 1e3 + torch.randn(2, 16, 4, 4) * 1e-3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("size", [(8, 12), (3, 3), (4, 4)])
def test_other_sizes_pool_and_resize_as_the_reference(size):
    block = filled()
    x = torch.randn(2, 16, *size)
    lean, lean_grads = run(block, x, SqueezeRemember.forward)
    ref, ref_grads = run(block, x, reference_forward)
    torch.testing.assert_close(lean, ref)
    for name in ref_grads:
        torch.testing.assert_close(lean_grads[name], ref_grads[name], msg=name)


def test_weights_and_the_diversity_term_equal_the_reference():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1)), nn.Flatten(), nn.Linear(16 * 16, 4))
    add_sr(net, "0", spec=SRSpec(memory_blocks=3), input_size=(3, 4, 4))
    block = net[0].sr
    with torch.no_grad():
        block.memory.normal_()
    x = torch.randn(6, 3, 4, 4)
    with recorded_weights(net, grad=True) as seen:
        out = net(x)
        (term,) = map(diversity_loss, drain(seen))
    (out.sum() + term).backward()
    lean = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    features = net[0][0](x)
    weights = reference_weights(block, features)
    ref_out = net[2](net[1](reference_forward(block, features)))
    (ref_out.sum() + diversity_loss(weights)).backward()
    torch.testing.assert_close(out, ref_out)
    for name, grad in lean.items():
        torch.testing.assert_close(grad, net.get_parameter(name).grad, msg=name)
    assert seen["0.sr"] == []  # drained


def test_bypass_swaps_the_block_out_and_back():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1)), nn.Flatten())
    add_sr(net, "0", spec=SRSpec(memory_blocks=3), input_size=(3, 4, 4))
    block = net[0].sr
    with torch.no_grad():
        block.memory.normal_()
    x = torch.randn(2, 3, 4, 4)
    with sr_bypassed(net):
        assert torch.equal(net(x), net[1](net[0][0](x)))
    assert net[0].sr is block and not torch.equal(net(x), net[1](net[0][0](x)))
    with pytest.raises(ValueError, match="no SR block named nope; the SR blocks are 0.sr"):
        with sr_bypassed(net, ["nope"]):
            pass


def test_one_forward_and_backward_cost_what_they_did_when_measured():
    """The op counts of one configuration, pinned so that a regression shows (docs/method.md):
    the recall and the add are one addmm, and the block moves fewer bytes than the reference."""
    block = filled(channels=64, size=(8, 8), memory_blocks=2)
    x = torch.randn(16, 64, 8, 8)
    lean = profile_block(block, x)
    assert lean["forward"]["by_op"] == {"convolution": 1, "addmm": 3, "relu": 1, "_softmax": 1}
    assert lean["backward"]["ops"] == 12
    x_cl = x.to(torch.bfloat16).contiguous(memory_format=CL)
    cl = profile_block(block.to(memory_format=CL), x_cl, dtype=torch.bfloat16)
    # bf16: the casts of the six small parameters, the logits (the CPU's softmax casts before it),
    # the weights and the memory; no copy of the memory's layout
    assert cl["forward"]["by_op"] == {"_to_copy": 9, "convolution": 1, "addmm": 3, "relu": 1, "_softmax": 1}
    original = SqueezeRemember.forward
    try:
        SqueezeRemember.forward = reference_forward
        ref = profile_block(block.to(memory_format=torch.contiguous_format), x)
    finally:
        SqueezeRemember.forward = original
    assert lean["forward"]["ops"] == ref["forward"]["ops"] - 1  # the add is in the addmm
    # the mix (16 x 64 x 8 x 8 float32, 0.25 MB) is no longer written out and read back in
    assert ref["forward"]["MB_moved"] - lean["forward"]["MB_moved"] == pytest.approx(0.5, rel=0.01)
