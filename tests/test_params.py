import json

import pytest

from srblock.cli import main
from srblock.params import param_count, sr_param_count, table_rows
from srblock.recipes import load_yaml, sweeps_for
from srblock.render import render
from srblock.spec import SRSpec

# stage outputs (C, H, W) of the paper's networks: CIFAR BasicBlock nets, Bottleneck (x4), ImageNet R50
CIFAR_BASIC = {1: (64, 32, 32), 2: (128, 16, 16), 3: (256, 8, 8), 4: (512, 4, 4)}
CIFAR_BOTTLENECK = {m: (4 * c, h, w) for m, (c, h, w) in CIFAR_BASIC.items()}
CIFAR_VGG = {1: (64, 16, 16), 2: (128, 8, 8), 3: (256, 4, 4), 4: (512, 2, 2), 5: (512, 1, 1)}
IMAGENET_R50 = {1: (256, 56, 56), 2: (512, 28, 28), 3: (1024, 14, 14), 4: (2048, 7, 7)}
SHAPES = {
    "resnet18_cifar": CIFAR_BASIC,
    "resnet34_cifar": CIFAR_BASIC,
    "resnet50_cifar": CIFAR_BOTTLENECK,
    "vgg16_bn_cifar": CIFAR_VGG,
    "vgg19_bn_cifar": CIFAR_VGG,
    "resnet50": IMAGENET_R50,
}


@pytest.fixture(scope="module")
def rows():
    return {table: table_rows(table) for table in ("cifar100", "cifar10", "imagenet")}


@pytest.mark.slow
def test_every_row_of_the_papers_tables(rows):
    counts = {table: len(r) for table, r in rows.items()}
    expected = {t: sum(len(load_yaml(s)["runs"]) for s in sweeps_for(t)) for t in counts}
    assert counts == expected == {"cifar100": 28 + 12, "cifar10": 28, "imagenet": 10}


@pytest.mark.slow
def test_sr_parameters_of_every_row_are_eq1(rows):
    for table, table_rows_ in rows.items():
        hidden = 16 if table == "imagenet" else 8
        for sweep in map(load_yaml, sweeps_for(table)):
            for run, row in zip(sweep["runs"], [r for r in table_rows_ if r["table"] == sweep["table"]]):
                assert row["name"] == run["name"]
                if "sr_stage" not in run:
                    assert row["sr_params"] == 0
                    continue
                c, h, w = SHAPES[run["model"]][run["sr_stage"]]
                assert row["sr_params"] == sr_param_count(
                    c, (h, w), SRSpec(memory_blocks=run["sr_memory_blocks"], hidden=hidden)
                ), run["name"]
                classes = {"cifar100": 100, "cifar10": 10, "imagenet": 1000}[table]
                assert (
                    row["params"] - row["sr_params"]
                    == param_count(run["model"], num_classes=classes, attn=run.get("attn"))["params"]
                )


def test_overheads_agree_with_table2(rows):
    """Table II's OH, to its printed precision, but for one row the paper misprints."""
    for row in rows["cifar100"]:
        if row["paper_oh_pct"] is None:
            continue
        if row["name"] == "R34 + CBAM + SR":
            # Eq. 1 at (M, P) = (3, 6) gives 1.21%; the paper's 1.05% is what P = 4 gives
            p4 = param_count("resnet34_cifar", attn="cbam", sr_stage=3, sr=SRSpec(memory_blocks=4))
            assert round(p4["oh_pct"], 2) == pytest.approx(row["paper_oh_pct"], abs=0.011)
            continue
        assert round(row["oh_pct"], 2) == pytest.approx(row["paper_oh_pct"], abs=0.011), row["name"]


def test_imagenet_overheads_span_the_papers_range(rows):
    """Section III-E: 'from about 1.59% to 7.87%' on ImageNet (P = 2 and P = 10 at h = 16)."""
    by_p = {row["P"]: round(row["oh_pct"], 2) for row in rows["imagenet"] if row["P"]}
    assert by_p[2] == 1.59 and by_p[10] == 7.87


def test_plain_and_regularised_rows_add_nothing(rows):
    for row in rows["cifar10"]:
        if row["M"] is None:
            assert row["params"] == row["base_params"] and row["oh_pct"] == 0


def test_param_count_of_one_configuration():
    row = param_count("resnet18_cifar", num_classes=100, attn="se", sr_stage=3, sr=SRSpec(memory_blocks=2))
    assert row["name"] == "resnet18_cifar + SE + SR"
    assert row["sr_at"] == "layer3 (256x8x8, P=2)"
    assert row["sr_params"] == sr_param_count(256, 8, SRSpec(memory_blocks=2))
    assert row["oh_pct"] == pytest.approx(100 * (row["params"] - 11_220_132) / 11_220_132)


def test_unknown_table():
    with pytest.raises(ValueError, match="unknown table 'svhn'; choose one of: cifar100, cifar10, imagenet"):
        table_rows("svhn")


def test_render_formats():
    data = [{"name": "a", "params": 1234567, "oh_pct": 0.5}, {"name": "bb", "params": 2, "oh_pct": None}]
    assert render(data, ["name", "params", "oh_pct"], "md").splitlines() == [
        "| name |    params | oh_pct |",
        "| ---- | --------: | -----: |",
        "| a    | 1,234,567 |   0.50 |",
        "| bb   |         2 |        |",
    ]
    assert render(data, ["name", "params"], "csv").splitlines() == ["name,params", "a,1234567", "bb,2"]
    assert json.loads(render(data, ["name", "oh_pct"], "json")) == [
        {"name": "a", "oh_pct": 0.5},
        {"name": "bb", "oh_pct": None},
    ]
    with pytest.raises(ValueError, match="unknown format 'xml'; choose one of: md, csv, json"):
        render(data, ["name"], "xml")


def test_default_p_is_the_models_own_everywhere():
    """Without sr_memory_blocks, P is the model's: DeepLabv3 2, FCN 3, the classification zoo 4."""
    assert param_count("deeplabv3_r50_d8", sr_stage=2)["sr_at"] == "backbone.layer2 (512x64x128, P=2)"
    assert param_count("fcn_r50_d8", sr_stage=2)["sr_at"] == "backbone.layer2 (512x64x128, P=3)"
    assert param_count("resnet18_cifar", sr_stage=3)["sr_at"] == "layer3 (256x8x8, P=4)"


def test_params_table_cityscapes(capsys):
    assert main(["params", "--table", "cityscapes", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["F-CONV", "F-CONV + SR", "DLv3", "DLv3 + SR"]
    fcn_sr, dl_sr = rows[1], rows[3]
    assert (fcn_sr["M"], fcn_sr["P"], dl_sr["M"], dl_sr["P"]) == (2, 3, 2, 2)
    # Eq. 1 at 512 x 64 x 128 (a 512x1024 crop at output stride 8)
    assert fcn_sr["sr_params"] == 512 + 1 + 64 * 128 * 8 + 8 + 8 * 3 + 3 + 3 * 512 * 64 * 128
    assert fcn_sr["paper_oh_pct"] == 12.85 and dl_sr["paper_oh_pct"] == 24.83
    assert rows[0]["sr_params"] == 0 and rows[0]["base_params"] == rows[1]["base_params"]


def test_the_input_size_flags_size_the_memory_and_sr_flags_need_a_stage(capsys):
    for flags in (["--input-size", "3", "16", "16"], ["--size", "16"]):  # today's, and the old flag
        assert (
            main(["params", "--model", "resnet10s_cifar", "--sr-stage", "3", *flags, "--format", "json"]) == 0
        )
        assert json.loads(capsys.readouterr().out)[0]["sr_at"] == "layer3 (64x4x4, P=4)"
    assert main(["params", "--model", "resnet10s_cifar", "--sr-memory-blocks", "2"]) == 2
    assert "--sr-memory-blocks describe an SR block: add --sr-stage M" in capsys.readouterr().err
    assert main(["params", "--model", "resnet10s_cifar", "--sr-stage", "3", "--sr-act", "none"]) == 0
