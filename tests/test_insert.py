import copy

import pytest
import timm
import torch
import torchvision
from torch import nn

import srblock
from srblock import SqueezeRemember, add_sr, remove_sr, sr_blocks, sr_bypassed, stage_names
from srblock.spec import SRSpec

from .helpers import fill_memory

# (builder, input_size, stage, expected stage module name): our zoo, torchvision, timm CNNs
NETWORKS = {
    "zoo_resnet18": (
        lambda: srblock.create_model("resnet18_cifar", num_classes=10),
        (3, 32, 32),
        3,
        "layer3",
    ),
    "zoo_vgg16": (
        lambda: srblock.create_model("vgg16_bn_cifar", num_classes=10),
        (3, 32, 32),
        4,
        "features.3",
    ),
    "tv_resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (3, 64, 64), 3, "layer3"),
    "tv_vgg11_bn": (lambda: torchvision.models.vgg11_bn(num_classes=10), (3, 64, 64), 2, "features.7"),
    "timm_efficientnet": (
        lambda: timm.create_model("efficientnet_b0", num_classes=10),
        (3, 64, 64),
        4,
        "blocks.4",
    ),
    "timm_convnext": (lambda: timm.create_model("convnext_atto", num_classes=10), (3, 64, 64), 3, "stages.2"),
    "timm_regnet": (lambda: timm.create_model("regnetx_002", num_classes=10), (3, 64, 64), 2, "s2"),
    "timm_mobilenetv3": (
        lambda: timm.create_model("mobilenetv3_small_050", num_classes=10),
        (3, 64, 64),
        1,
        "blocks.0",
    ),
}


@pytest.fixture(params=sorted(NETWORKS))
def network(request):
    build, input_size, stage, name = NETWORKS[request.param]
    return build().eval(), input_size, stage, name


@pytest.mark.slow
def test_fresh_block_computes_exactly_the_plain_model(network):
    model, input_size, stage, name = network
    x = torch.randn(2, *input_size)
    plain = copy.deepcopy(model)
    add_sr(model, stage=stage, spec=SRSpec(memory_blocks=3, hidden=8), input_size=input_size)
    assert [n for n, _ in sr_blocks(model)] == [f"{name}.sr"]
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


@pytest.mark.slow
def test_block_runs_once_on_the_stage_output(network):
    model, input_size, stage, name = network
    add_sr(model, stage=stage, spec=SRSpec(memory_blocks=3), input_size=input_size)
    fill_memory(model)
    block = model.get_submodule(f"{name}.sr")
    seen = []
    stage_out = []
    block.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    model.get_submodule(name).register_forward_hook(lambda m, args, out: stage_out.append(out))
    with torch.no_grad():
        model(torch.randn(2, *input_size))
    assert len(seen) == 1
    block_in, block_out = seen[0]
    assert block_in.shape[1:] == (block.channels, *block.size)
    assert not torch.equal(block_in, block_out)  # the memory was added...
    assert torch.equal(stage_out[-1], block_out)  # ...and is what the stage hands on


@pytest.mark.slow
def test_bypass_and_remove_give_back_the_plain_model(network):
    model, input_size, stage, _ = network
    plain = copy.deepcopy(model)
    x = torch.randn(2, *input_size)
    add_sr(model, stage=stage, spec=SRSpec(memory_blocks=3), input_size=input_size)
    fill_memory(model)
    with torch.no_grad():
        with_sr = model(x)
        assert not torch.allclose(with_sr, plain(x))
        with sr_bypassed(model):
            assert torch.equal(model(x), plain(x))
        assert torch.equal(model(x), with_sr)  # bypass ends with the block
        remove_sr(model)
        assert sr_blocks(model) == []
        assert torch.equal(model(x), plain(x))
    assert model.state_dict().keys() == plain.state_dict().keys()


def test_probe_forward_leaves_batchnorm_statistics_alone():
    model = srblock.create_model("resnet18_cifar", num_classes=10).train()
    before = copy.deepcopy(model.state_dict())
    add_sr(model, stage=2)
    assert model.training
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.slow
def test_zoo_stage_shapes_follow_the_spec():
    shapes = {}
    for stage in range(1, 5):
        model = add_sr(srblock.create_model("resnet18_cifar"), stage=stage)
        block = sr_blocks(model)[0][1]
        shapes[stage] = (block.channels, *block.size)
    assert shapes == {1: (64, 32, 32), 2: (128, 16, 16), 3: (256, 8, 8), 4: (512, 4, 4)}
    model = add_sr(srblock.create_model("resnet50_cifar"), stage=4)
    assert (sr_blocks(model)[0][1].channels, *sr_blocks(model)[0][1].size) == (2048, 4, 4)


@pytest.mark.slow
def test_stage_names_of_known_families():
    assert stage_names(torchvision.models.resnet18()) == ["layer1", "layer2", "layer3", "layer4"]
    assert stage_names(torchvision.models.vgg16()) == [f"features.{i}" for i in (4, 9, 16, 23, 30)]
    assert stage_names(srblock.create_model("vgg19_bn_cifar")) == [f"features.{i}" for i in range(5)]
    assert stage_names(timm.create_model("resnet18")) == ["layer1", "layer2", "layer3", "layer4"]
    assert stage_names(timm.create_model("regnetx_002")) == ["s1", "s2", "s3", "s4"]  # no stem


def test_stage_by_module_name():
    model = torchvision.models.resnet18(num_classes=10)
    add_sr(model, stage="layer2.1", input_size=(3, 64, 64))
    assert [n for n, _ in sr_blocks(model)] == ["layer2.1.sr"]
    assert sr_blocks(model)[0][1].size == (8, 8)


def test_several_blocks_and_larger_images():
    model = srblock.create_model("resnet18_cifar", num_classes=10, sr_stage=3).eval()
    add_sr(model, stage=4, spec=SRSpec(memory_blocks=2))
    fill_memory(model)
    assert [n for n, _ in sr_blocks(model)] == ["layer3.sr", "layer4.sr"]
    assert model(torch.randn(2, 3, 48, 40)).shape == (2, 10)  # memory is 8x8 and 4x4: resized
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_block_follows_the_model_dtype():
    model = srblock.create_model("resnet18_cifar", num_classes=10).to(torch.bfloat16)
    add_sr(model, stage=3)
    assert sr_blocks(model)[0][1].memory.dtype == torch.bfloat16


def test_blocks_survive_deepcopy_and_state_dict_round_trip():
    model = srblock.create_model("vgg16_bn_cifar", num_classes=10, sr_stage=2).eval()
    timm_model = add_sr(timm.create_model("convnext_atto", num_classes=10), stage=3, input_size=(3, 64, 64))
    for net, size in ((model, 32), (timm_model, 64)):
        fill_memory(net)
        twin = copy.deepcopy(net)
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(twin(x), net(x))
        fresh = copy.deepcopy(net)
        fill_memory(fresh)
        fresh.load_state_dict(net.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(fresh.eval()(x), net.eval()(x))


# ---- errors: the message says what is wrong and what to do


def test_stage_that_does_not_exist():
    model = torchvision.models.resnet18()
    with pytest.raises(ValueError) as err:
        add_sr(model, stage=5, input_size=(3, 64, 64))
    assert str(err.value) == (
        "stage 5 does not exist in ResNet: choose 1..4 (1 = layer1, 2 = layer2, 3 = layer3, 4 = layer4)"
    )
    with pytest.raises(ValueError, match="choose 1..4"):
        add_sr(model, stage=0, input_size=(3, 64, 64))
    with pytest.raises(ValueError, match="has no module named 'layer9'; stages are 1 = layer1"):
        add_sr(model, stage="layer9", input_size=(3, 64, 64))


def test_model_it_cannot_split():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with pytest.raises(
        ValueError, match="cannot split Sequential into stages: .* pass stage as a module name"
    ):
        add_sr(model, stage=1, input_size=(3, 16, 16))
    add_sr(model, stage="2", input_size=(3, 16, 16))  # by name it works
    assert sr_blocks(model)[0][1].size == (12, 12)


def test_wrong_input_size():
    model = srblock.create_model("resnet18_cifar")
    with pytest.raises(
        ValueError,
        match=r"input_size \(1, 32, 32\) does not fit ResNet .*pass the \(channels, height, width\) "
        r".*, e.g. its default \(3, 32, 32\)",
    ):
        add_sr(model, stage=3, input_size=(1, 32, 32))
    with pytest.raises(ValueError, match=r"input_size must be \(channels, height, width\)"):
        add_sr(model, stage=3, input_size=(32, 32))
    assert sr_blocks(model) == []


def test_input_size_needed_where_the_model_has_none():
    with pytest.raises(ValueError, match=r"input_size is needed .* e.g. \(3, 224, 224\)"):
        add_sr(torchvision.models.resnet18(), stage=3)


def test_inserting_twice_at_one_stage_is_refused():
    model = srblock.create_model("resnet18_cifar", sr_stage=3)
    with pytest.raises(
        ValueError, match=r"stage 3 \(layer3\) already has an SR block; remove it with remove_sr first"
    ):
        add_sr(model, stage=3)
    assert len(sr_blocks(model)) == 1


def test_stage_without_a_feature_map():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 1)
            self.pool = nn.Flatten()

        def forward(self, x):
            return self.pool(self.body(x))

    with pytest.raises(ValueError, match="pool of Head does not output a B x C x H x W feature map"):
        add_sr(Head(), stage="pool", input_size=(3, 8, 8))


def test_remove_sr_returns_to_plain_names_for_a_hooked_stage():
    model = torchvision.models.vgg11_bn(num_classes=10).eval()
    plain = copy.deepcopy(model)
    add_sr(model, stage=3, input_size=(3, 64, 64))
    assert isinstance(model.features[14].sr, SqueezeRemember)
    remove_sr(model)
    assert not model.features[14]._forward_hooks
    assert model.state_dict().keys() == plain.state_dict().keys()


def test_an_empty_stage_name_is_refused_with_the_choices():
    model = srblock.create_model("resnet10s_cifar")
    with pytest.raises(
        ValueError, match="stage is empty: give a stage number or a module name; stages are 1 = layer1"
    ):
        add_sr(model, " ")


def test_bypass_nests_reaches_every_place_of_a_shared_block_and_refuses_a_lone_block():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)), nn.Sequential(nn.Identity()))
    add_sr(net, "0", SRSpec(memory_blocks=2), input_size=(3, 4, 4))
    block = net[0].sr
    fill_memory(net)
    net[1].add_module("sr", block)  # one block in two places
    x = torch.randn(1, 3, 4, 4)
    plain = net[1][0](net[0][0](x))
    with torch.no_grad(), sr_bypassed(net):
        assert torch.equal(net(x), plain)  # both places
        with sr_bypassed(net, ["0.sr"]):  # bypassed already: stays so
            assert torch.equal(net(x), plain)
        assert torch.equal(net(x), plain)
    assert net[0].sr is block and net[1].sr is block
    with pytest.raises(ValueError, match="a lone block bypassed is nn.Identity"):
        with sr_bypassed(block):
            pass


def test_the_positional_p_and_a_dict_of_earlier_calls_still_work():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)))
    with pytest.warns(FutureWarning, match=r"pass P as SRSpec\(memory_blocks=2\)") as caught:
        add_sr(net, "0", 2, input_size=(3, 4, 4))
    assert caught[0].filename == __file__  # the warning points at the caller's line, not srblock's
    assert net[0].sr.spec == SRSpec(memory_blocks=2)
    model = srblock.create_model("resnet10s_cifar", sr_stage=3, sr={"memory_blocks": 3, "hidden": 4})
    assert model.layer3.sr.spec == SRSpec(memory_blocks=3, hidden=4)
    with pytest.raises(TypeError, match="the SR settings are an SRSpec"):
        SqueezeRemember(8, 4, "three")
