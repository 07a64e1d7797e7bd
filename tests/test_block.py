import dataclasses
import math

import pytest
import torch
from torch import nn

import srblock
from srblock import SqueezeRemember, count_params, sr_param_count
from srblock.block import diversity_loss
from srblock.memory import drain, recorded_weights
from srblock.spec import SRSpec

from .helpers import fill_memory


def make(channels=16, size=(4, 4), **spec):
    """A block of 16 x 4 x 4, P = 3, h = 8, C_s = 1 unless `spec` says otherwise."""
    return SqueezeRemember(channels, size, SRSpec(**{"memory_blocks": 3, "hidden": 8, **spec}))


def test_fresh_block_keeps_the_shape_is_the_identity_and_gives_weights():
    block = SqueezeRemember(
        channels=256, size=(8, 8), spec=SRSpec(memory_blocks=4, hidden=8, squeeze_channels=1)
    )
    x = torch.randn(2, 256, 8, 8)
    y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # zero memory: the identity
    weights = block.memory_weights(x)
    assert weights.shape == (2, 4) and weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))


def test_computes_the_papers_formula():
    block = make()
    with torch.no_grad():
        block.memory.normal_()
    x = torch.randn(5, 16, 4, 4)
    squeezed = block.squeeze(x).flatten(1)
    w = torch.softmax(block.fc2(torch.relu(block.fc1(squeezed))), dim=-1)
    expected = x + sum(w[:, p, None, None, None] * block.memory[p] for p in range(3))
    torch.testing.assert_close(block(x), expected)
    torch.testing.assert_close(block.memory_weights(x), w)


def test_weights_sum_to_one_and_are_positive():
    block = make()
    weights = block.memory_weights(torch.randn(7, 16, 4, 4) * 10)
    torch.testing.assert_close(weights.sum(-1), torch.ones(7))
    assert (weights > 0).all()


def test_gradients_reach_every_part_and_one_step_changes_the_output():
    block = make()
    x = torch.randn(4, 16, 4, 4)
    before = block(x).detach()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    # a target away from x: memory gets gradient first, the rest once memory is non-zero
    target = torch.randn_like(x)
    for _ in range(2):
        opt.zero_grad()
        loss = (block(x) - target).pow(2).mean()
        loss.backward()
        opt.step()
    for name in (
        "memory",
        "squeeze.weight",
        "squeeze.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ):
        grad = block.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert block.memory.abs().sum() > 0
    assert not torch.allclose(block(x), before)


def test_first_step_gives_memory_gradient():
    block = make()
    x = torch.randn(4, 16, 4, 4)
    block(x).sum().backward()
    # d/dM_p of sum(x + sum_p w_p M_p) = sum_b w_bp: non-zero for every block
    weights = block.memory_weights(x).detach()
    torch.testing.assert_close(block.memory.grad.sum(dim=(1, 2, 3)) / (16 * 4 * 4), weights.sum(0))


@pytest.mark.parametrize(
    "channels,size,blocks,hidden,squeeze",
    [
        (256, (8, 8), 4, 8, 1),
        (64, (32, 32), 2, 8, 1),
        (512, (4, 4), 12, 16, 2),
        (1024, (14, 14), 10, 32, 3),
        (3, (5, 7), 20, 1, 1),
    ],
)
def test_parameter_count_is_eq1(channels, size, blocks, hidden, squeeze):
    block = SqueezeRemember(
        channels, size, SRSpec(memory_blocks=blocks, hidden=hidden, squeeze_channels=squeeze)
    )
    counted = sum(p.numel() for p in block.parameters())
    h, w = size
    by_hand = (
        channels * squeeze
        + squeeze  # squeeze conv
        + squeeze * h * w * hidden
        + hidden  # first linear
        + hidden * blocks
        + blocks  # second linear
        + blocks * channels * h * w  # memory
    )
    spec = SRSpec(memory_blocks=blocks, hidden=hidden, squeeze_channels=squeeze)
    assert counted == by_hand == sr_param_count(channels, size, spec)
    with pytest.warns(FutureWarning, match="pass the block as an SRSpec"):  # earlier releases' numbers
        assert sr_param_count(channels, size, blocks, hidden, squeeze) == by_hand
    learned = dataclasses.replace(spec, learn_temperature=True)  # log T: one parameter more
    assert (
        sr_param_count(channels, size, learned)
        == by_hand + 1
        == count_params(SqueezeRemember(channels, size, learned))
    )


def test_init_is_the_papers():
    block = SqueezeRemember(32, (6, 6), SRSpec(memory_blocks=5, hidden=8, squeeze_channels=2))
    assert torch.count_nonzero(block.memory) == 0
    for layer, fan_in in ((block.squeeze, 32), (block.fc1, 2 * 36), (block.fc2, 8)):
        bound = 1 / math.sqrt(fan_in)
        for t in (layer.weight, layer.bias):
            assert t.abs().max() <= bound
            assert t.abs().max() > 0.5 * bound  # spread over the range, not near zero


def test_act_is_selectable():
    x = torch.randn(3, 16, 4, 4)
    linear = make(act=None)
    assert isinstance(linear.act, nn.Identity)
    squeezed = linear.squeeze(x).flatten(1)
    torch.testing.assert_close(linear.memory_weights(x), torch.softmax(linear.fc2(linear.fc1(squeezed)), -1))
    assert type(make(act="gelu").act).__name__ == "GELU"  # timm's GELU
    assert isinstance(make(act=nn.SiLU).act, nn.SiLU)
    assert isinstance(make().act, nn.ReLU)


def test_extra_repr_names_the_hyperparameters():
    text = repr(SqueezeRemember(256, (8, 4), SRSpec(memory_blocks=6, hidden=8, squeeze_channels=2)))
    assert "channels=256" in text and "size=8x4" in text and "memory_blocks=6" in text
    assert "hidden=8" in text and "squeeze_channels=2" in text


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(channels=0), "channels must be a positive int"),
        (dict(memory_blocks=0), "SRSpec: memory_blocks must be in [1, inf), got 0"),
        (dict(hidden=-1), "SRSpec: hidden must be in [1, inf), got -1"),
        (dict(squeeze_channels=1.5), "SRSpec: squeeze_channels takes an int, got 1.5"),
        (dict(temperature=0), "SRSpec: temperature must be in [0.001, 1000], got 0"),
        (
            dict(memory_init="ones"),
            "SRSpec: memory_init must be one of zeros, normal, prototypes, got 'ones'",
        ),
        (dict(size=(4, 4, 4)), "size must be (height, width)"),
        (dict(size=(0, 4)), "size must be (height, width)"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError) as err:
        make(**kwargs)
    assert message in str(err.value)


def test_the_keyword_arguments_of_earlier_releases_still_build_the_same_block():
    with pytest.warns(
        FutureWarning, match=r"pass the SR settings as an SRSpec \(memory_blocks=\.\.\., hidden"
    ):
        old = SqueezeRemember(16, 4, memory_blocks=3, hidden=6)
    assert old.spec == SRSpec(memory_blocks=3, hidden=6)
    assert {k: v.shape for k, v in old.state_dict().items()} == {
        k: v.shape for k, v in make(hidden=6).state_dict().items()
    }
    with pytest.raises(TypeError, match="unexpected keyword arguments: colour"):
        SqueezeRemember(16, 4, colour=1)


def test_int_size_means_square():
    assert make(size=5).size == (5, 5)


def test_other_feature_size_pools_the_squeeze_and_resizes_the_memory():
    block = make()
    with torch.no_grad():
        block.memory.normal_()
    x = torch.randn(2, 16, 8, 12)
    y = block(x)
    assert y.shape == x.shape
    pooled = nn.functional.adaptive_avg_pool2d(block.squeeze(x), (4, 4)).flatten(1)
    w = torch.softmax(block.fc2(torch.relu(block.fc1(pooled))), -1)
    mix = torch.einsum("bp,pchw->bchw", w, block.memory)
    expected = x + nn.functional.interpolate(mix, size=(8, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y, expected)
    assert block(torch.randn(2, 16, 3, 3)).shape == (2, 16, 3, 3)  # smaller than the memory too


def test_bypass_is_the_identity():
    net = nn.Sequential(nn.Sequential(nn.Identity()))
    net[0].add_module("sr", make())
    with torch.no_grad():
        net[0].sr.memory.normal_()
    x = torch.randn(2, 16, 4, 4)
    with srblock.sr_bypassed(net):
        assert torch.equal(net(x), x)
    assert not torch.equal(net(x), x)


def test_channels_last_in_channels_last_out():
    block = make()
    with torch.no_grad():
        block.memory.normal_()
    x = torch.randn(2, 16, 4, 4)
    y_cl = block(x.to(memory_format=torch.channels_last))
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_cl, block(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_dtype_and_weights_normalised(dtype):
    block = make()
    with torch.no_grad():
        block.memory.normal_()
    x = torch.randn(3, 16, 4, 4)
    with torch.autocast("cpu", dtype=dtype):
        y = block(x.to(dtype))
        weights = block.memory_weights(x.to(dtype))
    assert y.dtype == dtype
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    torch.testing.assert_close(y.float(), block(x), atol=0.1, rtol=0.05)


def test_half_module():
    block = make().to(torch.bfloat16)
    y = block(torch.randn(2, 16, 4, 4, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


def small_net() -> nn.Module:
    """A tiny two-stage CNN: compiles in seconds, unlike a ResNet."""
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    srblock.add_sr(net, stage="1", spec=SRSpec(memory_blocks=3), input_size=(3, 16, 16))
    fill_memory(net)
    return net.eval()


@pytest.mark.slow
def test_torch_compile_matches_eager_and_trains():
    net = small_net()
    x = torch.randn(4, 3, 16, 16)
    with recorded_weights(net, grad=True) as seen:  # hooks in place before the first call
        compiled = torch.compile(net)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), net(x))
        assert [w.shape for w in drain(seen)] == [(4, 3), (4, 3)]  # compiled and eager
        net.train()
        out = compiled(x)
        (out.sum() + diversity_loss(*drain(seen))).backward()
    block = srblock.sr_blocks(net)[0][1]
    assert block.memory.grad is not None and block.squeeze.weight.grad.abs().sum() > 0
    with srblock.sr_bypassed(net), torch.no_grad():  # recompiled without the block
        torch.testing.assert_close(compiled(x), net[4](net[3](net[2](net[1](net[0][:3](x))))))


@pytest.mark.slow
def test_zoo_model_channels_last_and_autocast():
    model = srblock.create_model("resnet18_cifar", num_classes=10, sr_stage=3).eval()
    fill_memory(model, std=0.1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(
            model(x.to(memory_format=torch.channels_last)), reference, atol=1e-4, rtol=1e-4
        )
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast("cpu", dtype=dtype):
                out = model(x)
            assert out.dtype == dtype
            assert nn.functional.cosine_similarity(out.float().flatten(), reference.flatten(), dim=0) > 0.99


def test_an_unbatched_map_and_an_unknown_activation_are_refused():
    block = make()
    with pytest.raises(
        ValueError, match=r"takes a batch of feature maps \(B x C x H x W\), got shape \(16, 4, 4\)"
    ):
        block(torch.randn(16, 4, 4))
    with pytest.raises(ValueError, match="unknown act 'nosuchact': give an activation timm knows"):
        make(act="nosuchact")


def test_an_unknown_activation_is_refused_when_the_spec_is_made():
    with pytest.raises(ValueError, match="SRSpec: unknown act 'nope': give an activation timm knows"):
        SRSpec(act="nope")
    assert SRSpec(act=None).act is None and SRSpec(act=nn.SiLU).act is nn.SiLU
