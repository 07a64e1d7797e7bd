import pytest
import torch
import torchvision
from torch import nn

import srblock
from srblock import count_params, create_model, init_weights, list_models, register_model, sr_blocks
from srblock.models.layers import DEFAULT_REG_RATE

from .helpers import fill_memory

CLASSIFIERS = [
    "resnet10s_cifar",
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50",
    "resnet50_cifar",
    "vgg16_bn_cifar",
    "vgg19_bn_cifar",
]
SEGMENTERS = ["deeplabv3_r50_d8", "fcn_r50_d8", "fcn_resnet10s"]
ZOO = sorted(CLASSIFIERS + SEGMENTERS)


def build_on_meta(name, **kwargs):
    with torch.device("meta"):
        return create_model(name, **kwargs)


def test_list_models():
    assert list_models() == ZOO
    assert list_models("resnet??_cifar") == ["resnet18_cifar", "resnet34_cifar", "resnet50_cifar"]


@pytest.mark.parametrize(
    "name,num_classes,expected",
    [
        ("resnet18_cifar", 100, 11_220_132),
        ("resnet34_cifar", 100, 21_328_292),
        ("resnet50_cifar", 100, 23_705_252),
        ("resnet50", 1000, 25_557_032),
    ],
)
def test_base_parameter_counts_are_the_specs(name, num_classes, expected):
    assert count_params(build_on_meta(name, num_classes=num_classes)) == expected


def test_resnet50_is_torchvisions():
    ours = build_on_meta("resnet50")
    with torch.device("meta"):
        theirs = torchvision.models.resnet50()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }


def test_plain_resnet18_cifar_has_the_cifar_stem():
    model = create_model("resnet18_cifar", num_classes=10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.default_input_size == (3, 32, 32)
    assert create_model("resnet50", num_classes=10).default_input_size == (3, 224, 224)


def test_resnet18_with_se_d2d_and_an_sr_block():
    model = create_model(
        "resnet18_cifar", num_classes=100, attn="se", reg="d2d", sr_stage=3, sr_memory_blocks=6, sr_hidden=8
    )
    ((name, block),) = sr_blocks(model)
    assert name == "layer3.sr"
    assert (block.channels, block.size, block.memory_blocks, block.hidden) == (256, (8, 8), 6, 8)
    model.eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18_cifar", "resnet50_cifar", "vgg16_bn_cifar", "vgg19_bn_cifar"])
@pytest.mark.parametrize("attn", [None, "se", "cbam"])
def test_every_cifar_model_and_attention_trains_a_step(name, attn):
    model = create_model(name, num_classes=10, in_chans=1, attn=attn, sr_stage=3, sr_memory_blocks=2)
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert sr_blocks(model)[0][1].memory.grad.abs().sum() > 0


def test_attention_sits_in_every_residual_block():
    model = create_model("resnet34_cifar", attn="cbam")
    blocks = [m for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for m in layer]
    assert len(blocks) == 16
    assert all(type(b.attn).__name__ == "CbamModule" for b in blocks)
    se = create_model("resnet50_cifar", attn="se").layer3[0].attn
    assert type(se).__name__ == "SEModule" and se.fc1.out_channels == 1024 // 16


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18_cifar", "vgg16_bn_cifar"])
@pytest.mark.parametrize("reg,layer", [("d2d", nn.Dropout2d), ("db", "DropBlock2d")])
def test_structured_dropout_at_the_end_of_stages_3_and_4(name, reg, layer):
    model = create_model(name, reg=reg, sr_stage=3)
    stages = srblock.stage_names(model)
    for i, stage_name in enumerate(stages, start=1):
        stage = model.get_submodule(stage_name)
        drop = getattr(stage, "drop", None)
        if i in (3, 4):
            assert (type(drop).__name__ == layer) if isinstance(layer, str) else isinstance(drop, layer)
            assert (
                drop.p == DEFAULT_REG_RATE[reg] if reg == "d2d" else drop.drop_prob == DEFAULT_REG_RATE[reg]
            )
        else:
            assert drop is None
    # the SR block sees the regularised stage output: drop runs before sr
    assert list(dict(model.get_submodule(stages[2]).named_children()))[-2:] == ["drop", "sr"]


def test_regulariser_rates_and_stages_are_overridable():
    model = create_model("resnet18_cifar", reg="d2d", reg_rate=0.3, reg_stages=(2,))
    assert model.layer2.drop.p == 0.3 and not hasattr(model.layer3, "drop")
    model = create_model("resnet18_cifar", reg="d")
    assert model.drop.p == DEFAULT_REG_RATE["d"]
    assert create_model("resnet18_cifar", reg="d", reg_rate=0.5).drop.p == 0.5
    assert create_model("resnet18_cifar", reg="db", drop_block_size=5).layer4.drop.block_size == 5


def test_regularisers_change_training_but_not_eval():
    model = create_model("resnet18_cifar", num_classes=10, reg="d2d", reg_rate=0.5)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_init_leaves_the_sr_block_alone():
    model = create_model("resnet18_cifar", num_classes=10, sr_stage=3)
    fill_memory(model)
    block = sr_blocks(model)[0][1]
    before = {k: v.clone() for k, v in block.state_dict().items()}
    conv_before = model.conv1.weight.clone()
    init_weights(model)
    assert not torch.equal(model.conv1.weight, conv_before)  # the rest was re-initialised...
    for key, value in block.state_dict().items():
        assert torch.equal(value, before[key]), key  # ...the block was not


def test_paper_init_kaiming_uniform_and_gaussian_vgg():
    resnet = create_model("resnet18_cifar")
    w = resnet.layer3[0].conv1.weight
    bound = (6 / w[0].numel()) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert torch.equal(resnet.layer1[0].bn1.weight, torch.ones(64))
    vgg = create_model("vgg16_bn_cifar")
    conv = vgg.features[2].conv1
    expected_std = (2 / (9 * conv.out_channels)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) < 0.05 * expected_std
    assert torch.count_nonzero(conv.bias) == 0
    fc = vgg.classifier[0].weight
    assert fc.abs().max() <= (6 / 512) ** 0.5


def test_input_size_sizes_the_memory():
    model = create_model("resnet18_cifar", num_classes=10, in_chans=1, sr_stage=3, input_size=(1, 28, 28))
    assert sr_blocks(model)[0][1].size == (7, 7)
    assert model.default_input_size == (1, 28, 28)
    model = create_model("resnet50", num_classes=10, sr_stage=4, sr_memory_blocks=2)
    assert sr_blocks(model)[0][1].size == (7, 7)


# ---- errors


def test_unknown_model():
    with pytest.raises(ValueError) as err:
        create_model("resnet19_cifar")
    assert str(err.value) == (
        "unknown model 'resnet19_cifar' (did you mean 'resnet18_cifar'?); choose one of: " + ", ".join(ZOO)
    )


def test_unknown_keyword():
    with pytest.raises(
        ValueError,
        match="resnet18_cifar takes no argument 'drop_path'; valid: block, layers, num_classes, in_chans",
    ):
        create_model("resnet18_cifar", drop_path=0.1)
    # checked against the model class, so each model takes what its class takes
    assert create_model("vgg16_bn_cifar", drop_rate=0.3).classifier[2].p == 0.3
    assert create_model("resnet18_cifar", drop_rate=0.3).drop.p == 0.3  # (timm's ResNet's keyword too)
    with pytest.raises(ValueError, match="vgg16_bn_cifar takes no argument 'drop_path_rate'"):
        create_model("vgg16_bn_cifar", drop_path_rate=0.1)  # (timm's VGG has no stochastic depth either)
    with pytest.raises(
        ValueError, match="fcn_resnet10s takes no argument 'attn'; valid: head, backbone, num_classes"
    ):
        create_model("fcn_resnet10s", attn="se")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(attn="eca"), "unknown attn 'eca'; choose one of: None, 'se', 'cbam'"),
        (dict(reg="dropout"), "unknown reg 'dropout'; choose one of: None, 'd', 'd2d', 'db'"),
        (dict(reg="d2d", reg_rate=1.5), "reg_rate must be in [0, 1), got 1.5"),
        (
            dict(reg="d2d", reg_stages=(3, 6)),
            "reg_stages (3, 6) name stages that do not exist: choose from 1..4",
        ),
        (dict(sr_stage=5), "stage 5 does not exist in ResNet: choose 1..4"),
        (dict(reg="d", drop_rate=0.2), "reg='d' is dropout before the classifier, as drop_rate is"),
        (dict(drop_rate=1.0), "drop_rate must be in [0, 1), got 1.0"),
    ],
)
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(ValueError) as err:
        create_model("resnet18_cifar", **kwargs)
    assert message in str(err.value)


def test_vgg_refuses_reg_d():
    with pytest.raises(
        ValueError, match="VGG always has dropout in its classifier .* choose reg None, 'd2d' or 'db'"
    ):
        create_model("vgg16_bn_cifar", reg="d")


def test_duplicate_registration_is_refused():
    def resnet18_cifar():
        return nn.Identity()

    with pytest.raises(ValueError, match="model 'resnet18_cifar' is already registered"):
        register_model(resnet18_cifar)
    assert create_model("resnet18_cifar").__class__.__name__ == "ResNet"


def test_builders_take_their_class_arguments():
    """Any argument of the model class can be changed by name, as timm's builders allow."""
    narrow = create_model("resnet18_cifar", widths=(8, 16, 32, 64), num_classes=10)
    assert narrow.layer4[0].conv1.out_channels == 64 and narrow.fc.in_features == 64
    deeper = create_model("resnet10s_cifar", layers=[2, 1, 1, 1])
    assert len(deeper.layer1) == 2
    assert create_model("fcn_r50_d8", aux=False, num_classes=5).aux_classifier is None


def test_narrow_resnets_dilate_where_asked():
    """Stages rebuilt at other widths dilate instead of striding, as torchvision's own do."""
    from torchvision.models.resnet import Bottleneck

    from srblock.models import ResNet

    net = ResNet(
        Bottleneck, [1, 1, 2, 2], widths=(8, 16, 32, 64), replace_stride_with_dilation=[False, True, True]
    )
    assert net.layer3[0].conv2.stride == net.layer4[0].conv2.stride == (1, 1)
    assert net.layer3[1].conv2.dilation == (2, 2) and net.layer4[1].conv2.dilation == (4, 4)
    x = torch.randn(1, 3, 64, 64)
    assert net.forward_features(x).shape[-2:] == (8, 8)  # output stride 8
    assert [info["reduction"] for info in net.feature_info] == [4, 8, 8, 8]


@pytest.mark.parametrize("name, stage", [("timm:convnext_atto", "stages.2.sr"), ("tv:resnet18", "layer3.sr")])
def test_torchvision_and_timm_models_by_name(name, stage):
    model = create_model(name, num_classes=10, sr_stage=3)
    assert [n for n, _ in sr_blocks(model)] == [stage]
    assert model.default_input_size == (3, 224, 224)
    plain = srblock.remove_sr(create_model(name, num_classes=10, sr_stage=3))
    assert count_params(model) > count_params(plain)
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_timm_model_with_other_input_channels_and_size():
    model = create_model("timm:resnet18", num_classes=3, in_chans=1, sr_stage=4, input_size=(1, 64, 64))
    assert sr_blocks(model)[0][1].size == (2, 2) and model.default_input_size == (1, 64, 64)


@pytest.mark.parametrize(
    "name, message",
    [
        ("timm:convnext_atoo", "unknown timm model 'convnext_atoo' (did you mean 'convnext_atto'"),
        ("tv:resnet181", "unknown torchvision model 'resnet181' (did you mean 'resnet18'"),
        ("hf:bert", "unknown model source 'hf' in 'hf:bert': write NAME, tv:NAME or timm:NAME"),
    ],
)
def test_unknown_external_names(name, message):
    with pytest.raises(ValueError) as err:
        create_model(name)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="takes 3 input channels only"):
        create_model("tv:resnet18", in_chans=1)


def test_default_p_is_the_models_own():
    from srblock.models import model_facts

    p = {name: model_facts(name).sr_default_blocks for name in ("fcn_r50_d8", "deeplabv3_r50_d8")}
    assert p == {"fcn_r50_d8": 3, "deeplabv3_r50_d8": 2}
    assert (
        model_facts("resnet18_cifar").sr_default_blocks == model_facts("timm:resnet18").sr_default_blocks == 4
    )


@pytest.mark.parametrize("name", srblock.list_models())
def test_the_facts_declared_at_registration_are_the_models_own(name):
    """What configs read without building a model is what the built model is."""
    from torchvision.models.segmentation.deeplabv3 import ASPPPooling

    from srblock.models import model_facts
    from srblock.models.segmentation import SegmentationModel

    facts = model_facts(name)
    with torch.device("meta"):
        model = srblock.create_model(name)
    assert facts.segments == isinstance(model, SegmentationModel)
    assert facts.min_train_batch == (2 if any(isinstance(m, ASPPPooling) for m in model.modules()) else 1)
    # create_model attaches them once (constructors state none of them), and the model takes that input
    assert (model.sr_default_blocks, model.default_input_size) == (facts.sr_default_blocks, facts.input_size)
    with torch.device("meta"):
        model.eval()(torch.zeros(2, *facts.input_size))


def test_the_facts_of_torchvision_and_timm_models_need_no_model():
    from srblock.models import model_facts

    assert (
        model_facts("tv:deeplabv3_resnet50").segments
        and model_facts("tv:deeplabv3_resnet50").min_train_batch == 2
    )
    assert not model_facts("tv:resnet50").segments
    assert model_facts("timm:resnet18").input_size == (3, 224, 224)


def test_a_builder_annotated_with_a_class_defined_later_still_registers(monkeypatch):
    from srblock import registry

    for table in (
        "_MODELS",
        "_MODEL_CLASSES",
        "_FACTS",
    ):  # the registry as it was, after (other tests list it)
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))

    def _forward_ref_net(**kwargs: object) -> "NotYetDefined":  # noqa: F821
        return nn.Linear(2, 2)

    register_model(_forward_ref_net)
    assert isinstance(create_model("_forward_ref_net"), nn.Linear)
