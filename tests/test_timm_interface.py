"""timm's generic model tests, in timm's style, over every `srblock_*` model with and without an
SR block: forward, backward, default cfgs (pooled size, reset_classifier, first conv and
classifier names), feature extraction (features_only), torch.fx, TorchScript and FX +
TorchScript. Small inputs keep them quick; the two smallest models run in the fast lane."""

import pytest
import timm
import torch
from timm.models import create_feature_extractor, get_graph_node_names

import srblock
from srblock.insert import sr_blocks

from .helpers import fill_memory

FAST = ("srblock_resnet10s_cifar", "srblock_vgg16_bn_cifar")
# the two smallest models with and without an SR block after stage 3 in the fast lane; the others
# with a block, in the full suite (without one they are timm's and torchvision's layers alone)
CASES = [
    pytest.param(name, sr_stage, marks=() if name in FAST else pytest.mark.slow)
    for name in timm.list_models("srblock_*")
    for sr_stage in ((None, 3) if name in FAST else (3,))
]
# TorchScript compiles slowly: the two smallest models, with and without a block, and every
# segmentation model (below) show the block scripts; the architectures are timm's and torchvision's
SCRIPTED = [case for case in CASES if case.values[0] in FAST]
# timm's model interface beyond forward, for every model with and without an SR block
ALL_CASES = [(name, sr_stage) for name in timm.list_models("srblock_*") for sr_stage in (None, 3)]
pytestmark = pytest.mark.filterwarnings("ignore:.torch.jit.script. is deprecated:FutureWarning")
MAX_SIZE = 64  # the ImageNet ResNet50 at 64 x 64, as timm's tests shrink large inputs


def build(name: str, sr_stage: int | None, **kwargs) -> torch.nn.Module:
    model = timm.create_model(name, pretrained=False, sr_stage=sr_stage, **kwargs)
    for _, block in sr_blocks(model):
        fill_memory(block)  # a memory that is not zero, so the block's recall counts in every output
    return model


def input_size(model: torch.nn.Module) -> tuple[int, ...]:
    size = model.pretrained_cfg["input_size"]
    return (size[0], *(min(s, MAX_SIZE) for s in size[1:]))


@pytest.mark.parametrize("name, sr_stage", CASES)
def test_model_forward(name, sr_stage):
    model = build(name, sr_stage).eval()
    out = model(torch.randn(1, *input_size(model)))
    assert out.shape == (1, model.num_classes) and not torch.isnan(out).any()


@pytest.mark.parametrize("name, sr_stage", CASES)
def test_model_backward(name, sr_stage):
    model = build(name, sr_stage, num_classes=42).train()
    out = model(torch.randn(2, *input_size(model)))
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert out.shape[-1] == 42 == model.num_classes and not torch.isnan(out).any()


@pytest.mark.parametrize("name, sr_stage", CASES)
def test_model_default_cfgs(name, sr_stage):
    model = build(name, sr_stage).eval()
    cfg, state = model.pretrained_cfg, model.state_dict()
    assert model.default_cfg is cfg and cfg["architecture"] == name
    assert {"input_size", "pool_size", "first_conv", "classifier", "mean", "std", "num_classes"} <= set(cfg)
    x = torch.randn(1, *cfg["input_size"])  # at its own size: pool_size holds there
    assert model.forward_features(x).shape[-2:] == cfg["pool_size"]
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (1, model.head_hidden_size)
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    assert model.get_classifier() is model.get_submodule(cfg["classifier"])

    model.reset_classifier(0)  # no head: pooled features
    out = model(x)
    assert out.shape == (1, model.head_hidden_size) and model.num_classes == 0
    model.reset_classifier(0, "")  # no pooling either: the last stage's map
    out = model(x)
    assert out.shape == (1, model.num_features, *cfg["pool_size"])
    model.reset_classifier(5, "avg")
    assert model(x).shape == (1, 5)


@pytest.mark.parametrize("name, sr_stage", CASES)
def test_model_forward_features(name, sr_stage):
    model = build(name, sr_stage, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 4
    size = input_size(model)
    outputs = model(torch.randn(1, *size))
    assert [o.shape[1] for o in outputs] == channels
    assert [size[-1] // o.shape[-1] for o in outputs] == reductions
    assert all(not torch.isnan(o).any() for o in outputs)
    assert bool(sr_blocks(model)) == (sr_stage is not None)


@pytest.mark.parametrize("name, sr_stage", CASES)
def test_model_forward_fx(name, sr_stage):
    model = build(name, sr_stage).eval()
    x = torch.randn(1, *input_size(model))
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(x), model(x))
    _, nodes = get_graph_node_names(model)  # timm's FX feature extraction: every node, the last kept
    extractor = create_feature_extractor(model, return_nodes=[nodes[-1]])
    torch.testing.assert_close(extractor(x)[nodes[-1]], model(x))


@pytest.mark.parametrize("name, sr_stage", SCRIPTED)
def test_model_forward_torchscript(name, sr_stage):
    model = build(name, sr_stage).eval()
    x = torch.randn(1, *input_size(model))
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, sr_stage", SCRIPTED)
def test_model_forward_fx_torchscript(name, sr_stage):
    model = build(name, sr_stage).eval()
    x = torch.randn(1, *input_size(model))
    scripted = torch.jit.script(torch.fx.symbolic_trace(model))
    torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)


def test_an_sr_resnet_serves_as_a_backbone_with_its_block_inside():
    model = timm.create_model("srblock_resnet18_cifar", sr_stage=3, features_only=True, out_indices=(1, 2, 3))
    assert model.feature_info.reduction() == [2, 4, 8] and model.feature_info.channels() == [128, 256, 512]
    [(where, block)] = sr_blocks(model)
    assert where == "layer3.sr"
    fill_memory(block)
    maps = model(torch.randn(2, 3, 32, 32))
    assert [m.shape for m in maps] == [(2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4)]
    with torch.no_grad():
        block.memory.zero_()  # the SR block is what the stage-3 map went through
    assert not torch.allclose(model(torch.zeros(2, 3, 32, 32))[1], maps[1])


def test_timm_conventions_for_keywords():
    model = timm.create_model("srblock_resnet10s_cifar", device="cpu", dtype=torch.float64)
    assert next(model.parameters()).dtype == torch.float64
    with pytest.raises(TypeError, match="got unexpected keyword arguments 'widht'"):
        timm.create_model("srblock_resnet10s_cifar", widht=3)
    pooled = timm.create_model("srblock_resnet10s_cifar", global_pool="catavgmax", num_classes=3)
    assert pooled(torch.randn(1, 3, 32, 32)).shape == (1, 3) and pooled.fc.in_features == 256
    headless = timm.create_model("srblock_resnet10s_cifar", num_classes=0)
    assert headless(torch.randn(2, 3, 32, 32)).shape == (2, headless.num_features)


def test_export_traces_an_sr_model():
    model = build("srblock_resnet10s_cifar", 3).eval()
    x = torch.randn(2, 3, 32, 32)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.slow
def test_timm_scripts_run_with_the_zoo_registered_once_and_without_a_warning(tmp_path):
    """The runner was srblock.timm_models itself, which `import srblock` had loaded already: run
    again as __main__ it registered the zoo twice (seven "Overwriting srblock_*" warnings) and
    runpy warned of the module found in sys.modules."""
    import subprocess
    import sys

    script = tmp_path / "train.py"  # a stand-in for timm's script: it only builds the model it is named
    script.write_text(
        "import sys, timm\n"
        "model = timm.create_model(sys.argv[sys.argv.index('--model') + 1], num_classes=3)\n"
        "print(sys.argv[0].endswith('train.py'), type(model).__name__, model.num_classes)\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-W", "always", "-m", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    done = run("srblock.run_timm", str(script), "--model", "srblock_resnet10s_cifar")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "ResNet", "3"]
    assert "Warning" not in done.stderr and "Overwriting" not in done.stderr, done.stderr[-2000:]
    usage = run("srblock.run_timm")
    assert usage.returncode == 1 and "usage: python -m srblock.run_timm SCRIPT.py" in usage.stderr
    earlier = run("srblock.timm_models", str(script), "--model", "srblock_resnet10s_cifar")  # still runs
    assert earlier.returncode == 0 and "Overwriting" not in earlier.stderr, earlier.stderr[-2000:]


SEGMENTERS = [
    pytest.param(name, marks=() if "resnet10s" in name else pytest.mark.slow)
    for name in srblock.list_models()
    if srblock.models.model_facts(name).segments
]


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmentation_models_with_sr_trace_script_and_export(name):
    channels = srblock.models.model_facts(name).input_size[0]
    model = srblock.create_model(name, sr_stage=2, num_classes=5, input_size=(channels, 64, 64)).eval()
    fill_memory(model)
    x = torch.randn(1, channels, 64, 64)
    expected = model(x)["out"]
    torch.testing.assert_close(torch.fx.symbolic_trace(model)(x)["out"], expected)
    torch.testing.assert_close(torch.jit.script(model)(x)["out"], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        torch.jit.script(torch.fx.symbolic_trace(model))(x)["out"], expected, rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x)["out"], expected)


@pytest.mark.parametrize("name, sr_stage", ALL_CASES)
def test_in_chans_and_timms_drop_keyword_are_what_srblock_builds(name, sr_stage):
    """timm's models know their input channels (test_model_default_cfgs read `in_chans`), and
    timm's --drop (drop_rate: dropout before the classifier) reaches the zoo's models as
    srblock.create_model's keyword does: one answer for one keyword; one a model does not take
    (--drop-path for a VGG) is refused in one line."""
    grey = build(name, sr_stage, in_chans=1)
    assert grey.in_chans == 1 and build(name, sr_stage).in_chans == 3
    bare = name.removeprefix("srblock_")
    if "drop_rate" in srblock.models.model_arguments(bare):
        torch.manual_seed(0)
        via_timm = build(name, sr_stage, drop_rate=0.3, num_classes=10)
        torch.manual_seed(0)
        own = srblock.create_model(bare, drop_rate=0.3, num_classes=10, sr_stage=sr_stage)
        rates = [[m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] for net in (via_timm, own)]
        assert rates[0] == rates[1] and 0.3 in rates[0]
    if "drop_path_rate" not in srblock.models.model_arguments(bare):  # (timm's VGG has none either)
        with pytest.raises(ValueError, match=f"{name} takes no drop_path_rate \\(got 0.1\\)"):
            build(name, sr_stage, drop_path_rate=0.1)


@pytest.mark.parametrize("sr_stage", [None, 3])
def test_drop_path_is_timms_stochastic_depth_on_the_residual_branches(sr_stage):
    """timm's --drop-path: each residual branch dropped per sample in training, at a rate rising
    linearly from 0 at the first block to drop_path_rate at the last, as timm's ResNet; the same
    through srblock.create_model; in eval mode, and at rate 0, the model is the plain one."""
    from timm.layers import DropPath

    model = build("srblock_resnet18_cifar", sr_stage, drop_path_rate=0.2, num_classes=10)
    own = srblock.create_model("resnet18_cifar", sr_stage=sr_stage, drop_path_rate=0.2, num_classes=10)
    rates = [
        [getattr(m.drop_path, "drop_prob", 0.0) for m in net.modules() if hasattr(m, "drop_path")]
        for net in (model, own)
    ]
    assert rates[0] == rates[1] == pytest.approx([0.2 * k / 7 for k in range(8)])
    plain = build("srblock_resnet18_cifar", sr_stage, num_classes=10)
    assert not any(isinstance(m, DropPath) for m in plain.modules())
    assert plain.state_dict().keys() == model.state_dict().keys()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x), plain.eval()(x))
    model.train(), plain.train()
    torch.manual_seed(0)
    assert not torch.allclose(model(x), plain(x))  # some branches dropped
    with pytest.raises(ValueError, match=r"drop_path_rate must be in \[0, 1\), got 1.5"):
        build("srblock_resnet10s_cifar", sr_stage, drop_path_rate=1.5)


@pytest.mark.parametrize("name, sr_stage", ALL_CASES)
def test_grad_checkpointing_gives_the_gradients_of_the_plain_pass(name, sr_stage):
    model = build(name, sr_stage, num_classes=5)
    x = torch.randn(2, *input_size(model))
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        torch.manual_seed(0)  # (the classifier's dropout draws alike)
        model(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert model.grad_checkpointing and grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6) for n in grads[0])


@pytest.mark.parametrize("name, sr_stage", ALL_CASES)
def test_layer_decay_groups_and_no_weight_decay_are_timms(name, sr_stage):
    """timm's layer-wise lr decay (group_matcher) groups every parameter once, the stem first and
    the head last, an SR block with the last block of its stage; no_weight_decay() names the SR
    memory where its spec trains it without weight decay, and timm's optimiser factory obeys it."""
    from timm.models._manipulate import group_with_matcher
    from timm.optim import create_optimizer_v2

    model = timm.create_model(name, sr_stage=sr_stage, sr_memory_weight_decay=0.0 if sr_stage else None)
    for coarse in (False, True):
        group_of = group_with_matcher(model.named_parameters(), model.group_matcher(coarse), reverse=True)
        names = [n for n, _ in model.named_parameters()]
        assert sorted(group_of) == sorted(names)
        head = {
            n for n, p in model.named_parameters() if any(p is q for q in model.get_classifier().parameters())
        }
        assert group_of[names[0]] == 0 and all(group_of[n] == max(group_of.values()) for n in head)
        for block, _ in sr_blocks(model):
            stage = block.rsplit(".", 1)[0]
            last = max(group_of[n] for n in names if n.startswith(f"{stage}.") and ".sr." not in n)
            assert {group_of[n] for n in names if n.startswith(f"{block}.")} == {last}
    memories = {f"{block}.memory" for block, _ in sr_blocks(model)}
    assert model.no_weight_decay() == memories
    optimizer = create_optimizer_v2(model, "sgd", lr=0.1, weight_decay=5e-4, layer_decay=0.7)
    scales = [g["lr_scale"] for g in optimizer.param_groups]
    assert min(scales) < max(scales) == 1.0  # the head at the full lr, the stem at the least
    undecayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert all(id(model.get_parameter(m)) in undecayed for m in memories)


@pytest.mark.parametrize("name, sr_stage", ALL_CASES)
def test_forward_intermediates_are_the_feature_maps_and_pruning_keeps_them(name, sr_stage):
    """timm 1.0's feature API: the stages' maps (an SR block inside its stage) as a plain forward
    computes them, the last one as forward_features; pruned after a stage, the same map for less."""
    model = build(name, sr_stage).eval()
    x = torch.randn(2, *input_size(model))
    with torch.no_grad():
        last, maps = model.forward_intermediates(x)
        expected = []  # each stage's output in a plain forward (feature_info names the stages)
        hooks = [
            model.get_submodule(info["module"]).register_forward_hook(lambda m, a, out: expected.append(out))
            for info in model.feature_info
        ]
        model(x)
        for hook in hooks:
            hook.remove()
        assert torch.equal(last, model.forward_features(x)) and len(maps) == len(model.feature_info)
        assert all(torch.allclose(a, b) for a, b in zip(maps, expected, strict=True))
        assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info]
        kept = model.forward_intermediates(x, indices=[1], intermediates_only=True)
        assert model.prune_intermediate_layers([1]) == [1]
        assert torch.equal(model.forward_intermediates(x, [1], intermediates_only=True)[0], kept[0])
    assert isinstance(model.get_classifier(), torch.nn.Identity)  # the head went with the stages after
    with pytest.raises(ValueError, match="output_fmt must be NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")


@pytest.mark.slow
def test_timms_train_flags_fine_tune_a_grey_export_through_the_runner(tmp_path, monkeypatch, capsys):
    """timm's train.py calls (tests/timm_train_script.py) through `python -m srblock.run_timm`, one
    epoch on tiny class folders, from a 1-channel export: --pretrained-path adapts its first conv
    to the 3 channels train.py asks for by default (timm's adapt_input_conv keeps its sum), or
    takes it as it is with --in-chans 1; --drop, --drop-path, --grad-checkpointing, --layer-decay
    and --model-kwargs reach the model. srblock's own training starts from the export likewise."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from srblock.cli import main
    from srblock.run_timm import main as run_timm

    from .helpers import FOLDER_RUN, argv, write_image_folder

    data = write_image_folder(tmp_path / "data", per_class=(40, 10, 10))
    line = FOLDER_RUN + " --set sr_stage=3 --set sr_memory_blocks=2 --set in_chans=1"
    assert main(argv(line, data=data, out=tmp_path / "runs")) == 0
    [run] = [p.parent for p in (tmp_path / "runs").rglob("result.json")]
    grey = tmp_path / "grey"
    assert main(["export", str(run), "--hf", str(grey)]) == 0
    exported_sum = float(load_file(str(grey / "model.safetensors"))["conv1.weight"].sum())

    script = str(Path(__file__).with_name("timm_train_script.py"))
    common = [script, str(data), "--model", "srblock_resnet10s_cifar", "--num-classes", "3", "--pretrained"]
    common += ["--pretrained-path", str(grey), "--model-kwargs", "sr_stage=3", "sr_memory_blocks=2"]
    flags = ["--drop", "0.2", "--drop-path", "0.1", "--grad-checkpointing", "--layer-decay", "0.7"]
    done = subprocess.run(
        [sys.executable, "-m", "srblock.run_timm", *common, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Overwriting" not in done.stderr
    rgb = json.loads(done.stdout.strip().splitlines()[-1])
    assert rgb["in_chans"] == 3 and rgb["input_size"] == [3, 32, 32]
    assert rgb["first_conv_sum"] == pytest.approx(exported_sum, rel=1e-5)
    assert rgb["drop_paths"] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1]) and rgb["dropouts"] == [0.2]
    assert rgb["grad_checkpointing"] and min(rgb["lr_scales"]) < 1.0 == max(rgb["lr_scales"])
    assert torch.isfinite(torch.tensor(rgb["loss"])) and 0 <= rgb["top1"] <= 100

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # (the runner sets the script's argv)
    run_timm([*common, "--in-chans", "1"])
    same = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert same["in_chans"] == 1 and same["input_size"] == [1, 32, 32]
    assert same["first_conv_sum"] == pytest.approx(exported_sum, rel=1e-6)

    line = FOLDER_RUN.replace(" --quiet", "") + " --set pretrained={grey}"
    assert main(argv(line, data=data, out=tmp_path / "tuned", grey=grey)) == 0
    assert "adapted to 3 input channels: conv1.weight" in capsys.readouterr().out
