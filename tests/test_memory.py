"""Memory-training strategies (init, own lr and weight decay, temperature, diversity) and the
statistics a run logs of its memory, against hand computations."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srblock
from srblock.block import SqueezeRemember, diversity_loss
from srblock.checkpoint import load_checkpoint
from srblock.keys import make_config
from srblock.memory import drain, init_memory, kmeans, memory_statistics, recorded_weights, statistic_columns
from srblock.spec import SRSpec
from srblock.train.engine import make_optimizer

from .helpers import KILLER, TINY, argv, cli_env, main_one_thread

pytestmark = pytest.mark.filterwarnings("ignore:.*official checksum:UserWarning")
STRATEGIES = argv(
    "--set sr_memory_init=prototypes --set sr_memory_lr_mult=10 --set sr_memory_weight_decay=0 "
    "--set sr_temperature=0.5 --set sr_learn_temperature=true --set sr_diversity=0.1"
)


def model_and_batch(**kwargs):
    torch.manual_seed(0)
    model = srblock.create_model("resnet10s_cifar", sr_stage=3, input_size=(3, 16, 16), **kwargs)
    return model, torch.randn(16, 3, 16, 16)


def block_input(model, x):
    seen = {}
    handle = srblock.sr_blocks(model)[0][1].register_forward_pre_hook(lambda m, a: seen.update(x=a[0]))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return seen["x"]


def test_temperature_sharpens_the_choice_and_can_be_learned():
    block = SqueezeRemember(8, 4, SRSpec(memory_blocks=3, temperature=0.5))
    x = torch.randn(2, 8, 4, 4)
    logits = block.fc2(block.act(block.fc1(block.squeeze(x).flatten(1))))
    torch.testing.assert_close(block.memory_weights(x), (logits / 0.5).softmax(-1))
    paper = SqueezeRemember(8, 4, SRSpec(memory_blocks=3))
    assert "log_temperature" not in dict(paper.named_parameters())  # the paper's block keeps its keys
    learned = SqueezeRemember(8, 4, SRSpec(memory_blocks=3, temperature=2.0, learn_temperature=True))
    assert learned.log_temperature.item() == pytest.approx(math.log(2.0))
    nn_memory = torch.randn_like(learned.memory)
    with torch.no_grad():
        learned.memory.copy_(nn_memory)
    learned(x).square().sum().backward()
    assert learned.log_temperature.grad is not None and learned.log_temperature.grad != 0
    assert "temperature=2 (learned)" in repr(learned)
    with pytest.raises(ValueError, match=r"SRSpec: temperature must be in \[0.001, 1000\], got 0"):
        SqueezeRemember(8, 4, SRSpec(temperature=0))


def test_diversity_is_minus_the_mutual_information_and_trains_the_fc_net_from_a_zero_memory():
    assert diversity_loss(torch.full((6, 3), 1 / 3)).item() == pytest.approx(0.0, abs=1e-6)
    assert diversity_loss(torch.eye(3)).item() == pytest.approx(-1.0, abs=1e-5)
    net = nn.Sequential(nn.Sequential(nn.Identity()))
    net[0].add_module("sr", SqueezeRemember(8, 4, SRSpec(memory_blocks=3)))
    block = net[0].sr
    with recorded_weights(net, grad=True) as seen:
        net(torch.randn(4, 8, 4, 4))
        (weights,) = drain(seen)
    # the memory is zero, so without this term fc1/fc2 get no gradient
    diversity_loss(weights).backward()
    assert block.fc1.weight.grad.abs().sum() > 0 and block.fc2.weight.grad.abs().sum() > 0
    assert not block._forward_pre_hooks  # the context took its hooks away
    with recorded_weights(net) as seen:  # detached: for analyses
        net(torch.randn(4, 8, 4, 4))
    assert not seen["0.sr"][0].requires_grad


def test_zeros_is_the_papers_identity_and_normal_scales_to_the_input():
    model, x = model_and_batch()
    plain = srblock.remove_sr(__import__("copy").deepcopy(model)).eval()
    init_memory(model, x, "zeros", 0.1, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), plain(x), rtol=0, atol=0)
    init_memory(model, x, "normal", 0.1, seed=0)
    memory = srblock.sr_blocks(model)[0][1].memory
    expected = 0.1 * block_input(model, x).square().mean().sqrt()
    assert memory.square().mean().sqrt().item() == pytest.approx(expected.item(), rel=1e-5)
    model.train()
    F.cross_entropy(model(x), torch.zeros(16, dtype=torch.long)).backward()  # the FC net learns at once
    block = srblock.sr_blocks(model)[0][1]
    assert block.fc2.weight.grad.abs().sum() > 0 and block.memory.grad.abs().sum() > 0


def test_prototypes_are_centred_scaled_centroids_and_deterministic_under_a_seed():
    model, x = model_and_batch()
    block = srblock.sr_blocks(model)[0][1]
    init_memory(model, x, "prototypes", 0.2, seed=3)
    first = block.memory.detach().clone()
    init_memory(model, x, "prototypes", 0.2, seed=3)
    assert torch.equal(first, block.memory)
    init_memory(model, x, "prototypes", 0.2, seed=4)
    assert not torch.equal(first, block.memory)
    assert first.sum(0).abs().max().item() < 1e-4  # centred: equal weights add nothing
    expected = 0.2 * block_input(model, x).square().mean().sqrt()
    assert first.square().mean().sqrt().item() == pytest.approx(expected.item(), rel=1e-5)
    points = torch.cat([torch.randn(20, 2) + 10, torch.randn(20, 2) - 10])
    centroids = kmeans(points, 2, torch.Generator().manual_seed(0))
    assert sorted(c[0].item() > 0 for c in centroids) == [False, True]  # one centroid per cluster
    with pytest.raises(ValueError, match="sr_memory_init must be one of zeros, normal, prototypes"):
        init_memory(model, x, "ones", 0.1, seed=0)
    with pytest.raises(ValueError, match="from as many k-means centroids, but 1 images were given"):
        init_memory(model, x[:1], "prototypes", 0.2, seed=0)


def test_a_memory_start_with_fewer_images_than_blocks_names_its_keys_before_the_run_starts(tmp_path, capsys):
    """k-means' own words named no key, and came after the run's folder was written."""
    from srblock.cli import main

    line = "train fashion_mnist --set sr_stage=3 --set sr_memory_init=prototypes --set limit_train=3"
    assert main([*line.split(), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    expected = "the 4 memory blocks (sr_memory_blocks) from as many k-means centroids of training images, "
    assert expected + "but the run has 3: raise limit_train" in err, err
    assert not list(tmp_path.rglob("config.yaml"))


def test_statistics_against_a_hand_computation():
    model, x = model_and_batch()
    block = srblock.sr_blocks(model)[0][1]
    with torch.no_grad():
        block.memory.normal_(0, 0.5)
    labels = torch.arange(16) % 2
    stats = memory_statistics(model, [(x[:8], labels[:8]), (x[8:], labels[8:])], max_images=12)
    assert (
        set(stats)
        == set(statistic_columns(model))
        == {"sr_mem_ratio", "sr_weight_entropy", "sr_weight_class_sep"}
    )
    inputs = block_input(model, x[:12])
    weights = block.memory_weights(inputs)
    ratio = block.memory.square().mean().sqrt() / inputs.square().mean().sqrt()
    entropy = -(weights * weights.log()).sum(1).mean() / math.log(4)
    assert stats["sr_mem_ratio"] == pytest.approx(ratio.item(), rel=1e-4)
    assert stats["sr_weight_entropy"] == pytest.approx(entropy.item(), rel=1e-4)
    # nearest centroid: centroids from images 0, 1, 4, 5, 8, 9 (even places in each class), tested on the rest
    train = torch.tensor([0, 1, 4, 5, 8, 9])
    test = torch.tensor([2, 3, 6, 7, 10, 11])
    centroids = torch.stack([weights[train[labels[train] == c]].mean(0) for c in (0, 1)])
    guess = torch.cdist(weights[test], centroids).argmin(1)
    assert stats["sr_weight_class_sep"] == pytest.approx(100 * (guess == labels[test]).float().mean().item())
    two = srblock.create_model("resnet10s_cifar", sr_stage=2, input_size=(3, 16, 16))
    srblock.add_sr(two, 3, input_size=(3, 16, 16))
    assert statistic_columns(two)[:3] == (
        "sr_mem_ratio_layer2",
        "sr_weight_entropy_layer2",
        "sr_weight_class_sep_layer2",
    )


def test_the_memory_has_its_own_learning_rate_and_weight_decay():
    cfg = make_config("cifar10", {"sr_stage": 3, "sr_memory_lr_mult": 10.0, "sr_memory_weight_decay": 0.0})
    model = srblock.create_model("resnet18_cifar", sr_stage=3)
    optimizer = make_optimizer(types.SimpleNamespace(device=torch.device("cpu")), cfg, model)
    rest, block, memory = optimizer.param_groups
    assert [p is srblock.sr_blocks(model)[0][1].memory for p in memory["params"]] == [True]
    assert memory["lr"] == pytest.approx(1.0) and memory["weight_decay"] == 0.0
    assert block["lr"] == rest["lr"] == 0.1 and block["weight_decay"] == cfg.weight_decay > 0
    options = ({}, {"sr_memory_init": "normal"}, {"sr_memory_lr_mult": 10.0}, {"sr_temperature": 0.5})
    names = {
        make_config("cifar10", {"sr_stage": 3, **kw}).folder_name()
        for kw in (*options, {"sr_diversity": 0.1})
    }
    assert len(names) == 5  # each strategy trains in a folder of its own


@pytest.mark.slow
def test_a_run_logs_the_memory_each_epoch_and_resumes_bit_exact_with_every_option_on(cifar, tmp_path):
    common = [
        "train",
        "cifar10",
        "--data",
        str(cifar),
        "--set",
        "epochs=2",
        "--set",
        "sr_stage=3",
        *STRATEGIES,
        *TINY,
    ]
    assert main_one_thread(*common, "--out", str(tmp_path / "straight")) == 0
    [folder] = [p.parent for p in (tmp_path / "straight").rglob("result.json")]
    assert folder.parent.name == (  # each strategy in the name, then what TINY changed of the recipe
        "resnet10s_cifar-sr3p4h8-init_prototypes-mlr10.0-mwd0.0-T0.5-Tlearned-div0.1"
        "-batch_size32-eval_batch_size64-epochs2"
    )
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert all(float(r["sr_mem_ratio"]) > 0 and 0 < float(r["sr_weight_entropy"]) <= 1 for r in rows)
    assert [r["val_acc_bypassed"] != "" for r in rows] == [False, True]  # by default after the last epoch
    result = json.loads((folder / "result.json").read_text())
    assert 0 <= result["test_acc_bypassed"] <= 100 and result["sr_mem_ratio"] > 0

    env = cli_env(KILL_AT="12", MARKER=str(tmp_path / "m"))
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, *common, "--out", str(tmp_path / "killed")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL  # 3 steps into epoch 2 (9 steps an epoch)
    assert main_one_thread("train", "cifar10", "--out", str(tmp_path / "killed"), "--resume", "--quiet") == 0
    again = tmp_path / "killed" / folder.relative_to(tmp_path / "straight")
    a, b = load_checkpoint(again / "last.ckpt"), load_checkpoint(folder / "last.ckpt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert (again / "metrics.csv").read_text().splitlines()[1:] != []


@pytest.mark.slow
def test_bypass_every_epoch(cifar, tmp_path):
    line = "train cifar10 --data {data} --out {out} --set epochs=2 --set sr_stage=3 --set sr_bypass_every=1"
    from srblock.cli import main

    assert main(argv(line, data=cifar, out=tmp_path) + TINY) == 0
    [metrics] = tmp_path.rglob("metrics.csv")
    assert all(r["val_acc_bypassed"] != "" for r in csv.DictReader(metrics.open()))


def test_a_segmentation_run_logs_the_memory_per_evaluation(seg_run):
    rows = list(csv.DictReader((seg_run / "metrics.csv").open()))
    assert rows and all(0 < float(r["sr_weight_entropy"]) <= 1 and r["sr_mem_ratio"] != "" for r in rows)
    result = json.loads((seg_run / "result.json").read_text())
    assert 0 <= result["test_miou_bypassed"] <= 100 and "sr_weight_class_sep" in result


def test_a_mask_counts_as_its_main_scored_class():
    from srblock.memory import image_labels

    masks = torch.tensor([[[1, 1], [2, 255]], [[255, 255], [255, 255]], [[0, 3], [3, 3]]])
    assert image_labels(masks, ignore_index=255).tolist() == [1, -1, 3]
    assert image_labels(torch.tensor([4, 2])).tolist() == [4, 2]


def test_one_memory_block_and_too_few_images_are_handled():
    model = srblock.create_model("resnet10s_cifar", sr_stage=3, sr_memory_blocks=1, input_size=(3, 16, 16))
    stats = memory_statistics(model, [(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))])
    assert math.isnan(stats["sr_weight_entropy"])  # P = 1: no choice to measure
    assert diversity_loss(torch.ones(3, 1)).item() == 0.0
    with pytest.raises(ValueError, match="k-means needs at least 5 points"):
        kmeans(torch.randn(3, 4), 5, torch.Generator().manual_seed(0))
    same = kmeans(torch.ones(10, 4), 2, torch.Generator().manual_seed(0))  # identical points: no crash
    assert torch.equal(same, torch.ones(2, 4))
    with pytest.raises(
        ValueError, match="sr_memory_init=normal starts the memory from images held in memory"
    ):
        make_config("imagenet", {"sr_stage": 3, "sr_memory_init": "normal"})


def test_memory_curves_of_a_segmentation_run(tmp_path):
    from srblock.analysis.plots import memory_curves_figure

    rows = [
        {"iteration": i, "val_miou": 10.0 * i, "sr_mem_ratio": 1e-3 * i, "sr_weight_entropy": 0.9,
         "sr_weight_class_sep": 20.0}
        for i in (1, 2)
    ]  # fmt: skip
    assert memory_curves_figure(rows, tmp_path / "m.png").is_file()
    assert memory_curves_figure([{"epoch": 0, "val_acc": 50.0}], tmp_path / "none.png") is None


@pytest.mark.slow
def test_sr_runs_in_bf16_weights_log_their_memory_too(cifar, cityscapes, tmp_path):
    """bf16-true holds bf16 weights: the statistics and the evaluations feed them bf16 images."""
    from srblock.cli import main

    from .helpers import TINY_SEG

    line = "train cifar10 --data {data} --out {out} --set epochs=1 --set sr_stage=3 --precision bf16-true"
    assert main(argv(line, data=cifar, out=tmp_path / "cls") + TINY) == 0
    seg = "train cityscapes --data {data} --out {out} --set model=fcn_resnet10s --set sr_stage=2"
    seg += " --precision bf16-true"
    assert main(argv(seg, data=cityscapes, out=tmp_path / "seg") + TINY_SEG) == 0
    for result in (tmp_path / "cls").rglob("result.json"), (tmp_path / "seg").rglob("result.json"):
        [path] = list(result)
        assert json.loads(path.read_text())["sr_mem_ratio"] >= 0
