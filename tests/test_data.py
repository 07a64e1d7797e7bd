import pytest
import torch

from srblock.data import DATASETS, DeviceLoader, load_dataset, make_dataloader, split_train_val
from srblock.data.device_loader import random_crop, random_flip

from .datagen import write_cifar10, write_cifar100, write_fashion_mnist


def test_cifar10_from_pickles_warns_on_checksum(tmp_path):
    write_cifar10(tmp_path, per_batch=20, test=30)
    with pytest.warns(UserWarning, match="does not match the official checksum; using it anyway"):
        info, train, test = load_dataset("cifar10", tmp_path)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.labels.shape == (30,) and train.classes[0] == "class0"
    assert info.num_classes == 10


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path, train=50, test=10)
    with pytest.warns(UserWarning):
        info, train, test = load_dataset("cifar100", tmp_path)
    assert len(train) == 50 and len(test) == 10 and info.num_classes == 100
    assert train.labels.max() < 100 and len(train.classes) == 100


def test_missing_and_incomplete_cifar_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar100", tmp_path)
    message = str(err.value)
    assert "cifar-100-python lacks train, test, meta" in message and "cifar-100-python.tar.gz" in message
    write_cifar10(tmp_path, per_batch=5, test=5)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3 .*unpack it into"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError, match="needs a data folder: pass --data DIR"):
        load_dataset("cifar10", None)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; choose one of: cifar10, cifar100, fashion_mnist"):
        load_dataset("svhn", tmp_path)


def test_fashion_mnist_from_idx_files(tmp_path):
    write_fashion_mnist(tmp_path / "fashion-mnist", train=40, test=10)
    info, train, test = load_dataset("fashion_mnist", tmp_path)
    assert train.images.shape == (40, 1, 28, 28) and test.images.shape == (10, 1, 28, 28)
    assert info.input_size == (1, 28, 28) and train.classes[-1] == "Ankle boot"
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", tmp_path / "nowhere")


def test_truncated_idx_file(tmp_path):
    folder = write_fashion_mnist(tmp_path, train=10, test=5)
    path = folder / "train-images-idx3-ubyte.gz"
    import gzip

    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(ValueError, match="is truncated"):
        load_dataset("fashion_mnist", folder)


def test_split_is_90_10_disjoint_and_seeded(tmp_path):
    write_cifar10(tmp_path, per_batch=20, test=5)
    with pytest.warns(UserWarning):
        _, train, _ = load_dataset("cifar10", tmp_path)
    a_train, a_val = split_train_val(train, 0.1, seed=0)
    b_train, b_val = split_train_val(train, 0.1, seed=1)
    assert (len(a_train), len(a_val)) == (90, 10)
    pixels = lambda s: {tuple(img.flatten()[:16].tolist()) for img in s.images}  # noqa: E731
    assert not pixels(a_train) & pixels(a_val)
    assert pixels(a_val) != pixels(b_val)
    assert torch.equal(split_train_val(train, 0.1, seed=0)[1].labels, a_val.labels)


def test_random_crop_is_a_shifted_window():
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).view(2, 3, 5, 5)
    cropped = random_crop(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, y:y + 5, x:x + 5] for y in range(5) for x in range(5)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(-1))


def loader(images, labels, **kw):
    args = dict(batch_size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), train=True, crop_padding=4, flip=True, seed=3)
    args.update(kw)
    return DeviceLoader(images, labels, **args)


def test_device_loader_order_and_augmentation_depend_on_seed_and_epoch_only():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(50)
    first = loader(images, labels)
    first.set_epoch(2)
    again = loader(images, labels)
    again.set_epoch(2)
    batches_a, batches_b = list(first), list(again)
    assert len(batches_a) == len(first) == 7
    for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    again.set_epoch(3)
    assert not torch.equal(next(iter(again))[1], batches_a[0][1])
    assert sorted(torch.cat([y for _, y in batches_a]).tolist()) == list(range(50))
    x = batches_a[0][0]
    assert x.dtype == torch.float32 and abs(x.mean().item()) < 1.0


def test_device_loader_shards_across_processes_and_eval_covers_all():
    images = torch.zeros(20, 1, 4, 4, dtype=torch.uint8)
    labels = torch.arange(20)
    seen = []
    for rank in range(3):
        shard = loader(images, labels, rank=rank, world_size=3, mean=(0.0,), std=(1.0,))
        seen.append(torch.cat([y for _, y in shard]))
    assert {len(s) for s in seen} == {6}  # equal shares: every process takes as many steps
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    evals = [torch.cat([y for _, y in loader(images, labels, train=False, rank=r, world_size=3, mean=(0.0,), std=(1.0,))]) for r in range(3)]
    assert sorted(torch.cat(evals).tolist()) == list(range(20))


def test_dataloader_path_is_seeded_and_normalised():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    dl = make_dataloader(images, torch.arange(16), batch_size=4, mean=(0.5,) * 3, std=(0.25,) * 3, train=True, crop_padding=2, flip=True, seed=1)
    dl.generator.manual_seed(5)
    a = [y for _, y in dl]
    dl.generator.manual_seed(5)
    b = [y for _, y in dl]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    x, _ = next(iter(dl))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32


def test_dataset_table_is_consistent():
    for name, info in DATASETS.items():
        assert info.name == name and len(info.mean) == len(info.std) == info.input_size[0]
