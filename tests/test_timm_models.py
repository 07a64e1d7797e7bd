"""srblock's zoo through timm's registry (`srblock_<name>`), as timm's train.py builds models."""

import pytest
import timm
import torch

import srblock


def test_the_zoo_is_in_timm_under_its_own_prefix():
    from srblock.timm_models import TIMM_NAMES  # what `import srblock` registered

    names = timm.list_models("srblock_*")
    assert set(names) == set(TIMM_NAMES) and {"srblock_resnet18_cifar", "srblock_vgg16_bn_cifar"} <= set(
        names
    )
    assert not [n for n in names if "fcn" in n or "deeplab" in n]  # classification models only
    assert all(n.removeprefix("srblock_") in srblock.list_models() for n in names)


def test_timm_builds_and_trains_it_with_train_py_arguments():
    # what timm's train.py passes (None values are dropped by timm itself), plus --model-kwargs
    model = timm.create_model(
        "srblock_resnet10s_cifar",
        pretrained=False,
        in_chans=3,
        num_classes=7,
        drop_rate=0.0,
        drop_path_rate=None,
        global_pool=None,
        sr_stage=3,
        sr_memory_blocks=2,
    )
    [(where, block)] = srblock.sr_blocks(model)
    assert where == "layer3.sr" and block.memory.shape[0] == 2
    config = timm.data.resolve_data_config({}, model=model)
    assert config["input_size"] == (3, 32, 32) and config["crop_pct"] == 1.0
    loss = model(torch.randn(2, 3, 32, 32)).logsumexp(1).mean()
    loss.backward()
    assert model.fc.weight.shape == (7, 128) and block.memory.grad is not None


def test_what_it_cannot_do_is_one_line():
    with pytest.raises(ValueError, match="srblock_resnet10s_cifar has no published weights"):
        timm.create_model("srblock_resnet10s_cifar", pretrained=True)
    with pytest.raises(ValueError, match="takes no drop_path_rate \\(got 0.2\\)"):
        timm.create_model("srblock_vgg16_bn_cifar", drop_path_rate=0.2)  # (as timm's VGG)
