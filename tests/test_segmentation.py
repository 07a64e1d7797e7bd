"""Segmentation: the models (FCN, DeepLabv3, the demo's tiny FCN), inference (whole image,
multi-scale + flip) and metrics (mIoU, mAcc)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from srblock import create_model, sr_blocks
from srblock.data.seg_transforms import IGNORE_INDEX
from srblock.models.segmentation import main_output
from srblock.seg_eval import SegmentationMetric, class_table, iou_from_confusion, segment

from .helpers import fill_memory


@pytest.mark.parametrize(
    "ours, theirs", [("fcn_r50_d8", "fcn_resnet50"), ("deeplabv3_r50_d8", "deeplabv3_resnet50")]
)
def test_r50_d8_models_are_torchvisions_with_dropout_01(ours, theirs):
    with torch.device("meta"):
        model = create_model(ours)
        reference = torchvision.models.get_model(
            theirs, weights=None, weights_backbone=None, num_classes=19, aux_loss=True
        )
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}  # torchvision weights load
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.1}
    backbone = model.backbone  # output stride 8: stages 3 and 4 dilate instead of striding
    assert backbone.layer3[0].conv2.stride == backbone.layer4[0].conv2.stride == (1, 1)
    assert backbone.layer3[1].conv2.dilation == (2, 2) and backbone.layer4[1].conv2.dilation == (4, 4)
    if ours.startswith("deeplabv3"):
        rates = [branch[0].dilation[0] for branch in list(model.classifier[0].convs)[1:4]]
        assert rates == [12, 24, 36] and model.classifier[0].convs[0][0].kernel_size == (1, 1)


@pytest.mark.parametrize("name, blocks", [("fcn_r50_d8", 3), ("deeplabv3_r50_d8", 2)])
def test_sr_after_stage_2_sized_for_the_crop(name, blocks):
    with torch.device("meta"):
        model = create_model(name, sr_stage=2)
    [(where, block)] = sr_blocks(model)
    assert where == "backbone.layer2.sr" and block.memory_blocks == blocks
    assert (block.channels, *block.size) == (512, 64, 128)  # 512x1024 crop at output stride 8


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("fcn_resnet10s", (1, 64, 64)), ("deeplabv3_r50_d8", (3, 64, 96))])
def test_fresh_sr_block_leaves_the_segmentation_model_unchanged(name, size):
    plain = create_model(name).eval()
    with_sr = create_model(name, sr_stage=2, input_size=size).eval()
    missing = with_sr.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".sr." in k for k in missing)
    x = torch.randn(2, *size)
    with torch.no_grad():
        assert torch.equal(plain(x)["out"], with_sr(x)["out"])
        # other image sizes (whole-image, multi-scale testing) go through the block's resizing
        bigger = torch.randn(1, size[0], size[1] * 2, size[2] + 16)
        assert torch.equal(plain(bigger)["out"], with_sr(bigger)["out"])


def test_aux_head_only_while_training():
    model = create_model("fcn_resnet10s")
    x = torch.randn(2, 1, 32, 32)
    assert set(model.train()(x)) == {"out", "aux"}
    assert set(model.eval()(x)) == {"out"}
    assert model(x)["out"].shape == (2, 11, 32, 32)


@pytest.mark.slow
def test_multiscale_flip_inference_returns_the_input_size():
    model = create_model("fcn_resnet10s", sr_stage=2).eval()
    fill_memory(model, 0.1)
    x = torch.randn(2, 1, 48, 72)
    probs = segment(model, x, scales=(0.5, 0.75, 1.0, 1.75), flip=True)
    assert probs.shape == (2, 11, 48, 72)
    assert torch.allclose(probs.sum(1), torch.ones(2, 48, 72), atol=1e-5)
    with torch.no_grad():
        single = model(x)["out"].softmax(1)
    assert torch.allclose(segment(model, x), single)


def test_miou_against_a_hand_computed_confusion_matrix():
    # 3 classes; 255 is ignored wherever the label says so, whatever the prediction
    labels = torch.tensor([[0, 0, 1, 1, 2, 255, 255, 2]])
    preds = torch.tensor([[0, 1, 1, 1, 0, 2, 0, 2]])
    logits = torch.nn.functional.one_hot(preds, 3).permute(0, 2, 1).float()[..., None]  # B x K x W x 1
    metric = SegmentationMetric(3, IGNORE_INDEX)
    metric.update(logits, labels[..., None])
    scores = metric.compute()
    # rows: label, columns: prediction: [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    iou = [1 / (2 + 2 - 1), 2 / (2 + 3 - 2), 1 / (2 + 1 - 1)]
    acc = [1 / 2, 2 / 2, 1 / 2]
    assert scores["class_iou"] == pytest.approx([100 * v for v in iou])
    assert scores["class_acc"] == pytest.approx([100 * v for v in acc])
    assert scores["miou"] == pytest.approx(100 * sum(iou) / 3)
    assert scores["macc"] == pytest.approx(100 * sum(acc) / 3)
    assert scores["pixel_acc"] == pytest.approx(100 * 4 / 6)


def test_a_class_absent_from_labels_and_predictions_is_left_out_of_the_mean():
    confusion = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    scores = iou_from_confusion(confusion)
    assert torch.isnan(scores["iou"][2]) and torch.isnan(scores["acc"][2])
    assert scores["miou"].item() == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_main_output_and_class_table():
    x = torch.zeros(1)
    assert main_output({"out": x, "aux": x + 1}) is x and main_output(x) is x
    scores = {"whole": {"class_iou": [50.0, 100.0], "class_acc": [60.0, 100.0], "miou": 75.0, "macc": 80.0}}
    table = class_table(("road", "car"), scores).splitlines()
    assert table[0].split("|")[1:-1] == [" class ", " iou_whole ", " acc_whole "]
    assert table[2].split() == ["|", "road", "|", "50.00", "|", "60.00", "|"]
    assert table[-1].split() == ["|", "mean", "|", "75.00", "|", "80.00", "|"]
