"""The data sets (CIFAR, Fashion-MNIST, ImageNet and Cityscapes folders, the demo's canvases), their
transforms, and the loaders (the fast path, DataLoaders, resumable sampling)."""

import gzip
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from srblock.data import (
    DATASETS,
    DeviceLoader,
    EpochSampler,
    SeededItems,
    load_dataset,
    make_dataloader,
    split_train_val,
)
from srblock.data.canvas import paste_canvases
from srblock.data.cityscapes import CITYSCAPES_CLASSES, train_id_lut
from srblock.data.device_loader import random_crop, random_flip
from srblock.data.imagenet import collate_encoded, decode_batch, imagenet_transform
from srblock.data.sampler import epoch_seed, item_seed
from srblock.data.seg_transforms import SegTrainTransform

from .helpers import write_cifar10, write_cifar100, write_cityscapes, write_fashion_mnist, write_imagenet


def test_cifar10_from_pickles_warns_on_checksum(tmp_path):
    write_cifar10(tmp_path, per_batch=20, test=30)
    with pytest.warns(UserWarning, match="does not match the official checksum; using it anyway") as caught:
        info, train, test = load_dataset("cifar10", tmp_path)
    assert caught[0].filename == str(tmp_path / "cifar-10-batches-py" / "data_batch_1")  # the user's file
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
    with pytest.raises(
        ValueError, match="unknown dataset 'svhn'; choose one of: cifar10, cifar100, fashion_mnist"
    ):
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
        windows = [padded[i, :, y : y + 5, x : x + 5] for y in range(5) for x in range(5)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(flipped[i], images[i]) or torch.equal(flipped[i], images[i].flip(-1))


def loader(images, labels, **kw):
    args = dict(
        batch_size=8,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        train=True,
        crop_padding=4,
        flip=True,
        seed=3,
    )
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
    evals = [
        torch.cat(
            [y for _, y in loader(images, labels, train=False, rank=r, world_size=3, mean=(0.0,), std=(1.0,))]
        )
        for r in range(3)
    ]
    assert sorted(torch.cat(evals).tolist()) == list(range(20))


def test_dataloader_path_is_seeded_and_normalised():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    dl = make_dataloader(
        images,
        torch.arange(16),
        batch_size=4,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        train=True,
        crop_padding=2,
        flip=True,
        seed=1,
    )
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
    # held in memory or read from files, as the loaders treat them
    assert [n for n, i in DATASETS.items() if not i.in_memory] == ["imagenet", "folder", "cityscapes"]
    # only a user's folder brings its own validation split; its classes come from the folder
    assert [n for n, i in DATASETS.items() if i.own_val] == ["folder"] and DATASETS["folder"].num_classes == 0


def test_normalisation_for_other_channel_counts_is_the_channel_mean():
    info = DATASETS["imagenet"]
    assert info.stats(3) == (info.mean, info.std)
    mean, std = info.stats(1)
    assert mean == (pytest.approx(sum(info.mean) / 3),) and std == (pytest.approx(sum(info.std) / 3),)


# --- ImageNet ---


def test_image_folder_layout_is_read(imagenet):
    info, train, val = load_dataset("imagenet", imagenet)
    assert (len(train), len(val), train.classes) == (12, 6, ("n00000000", "n00000001", "n00000002"))
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and info.in_memory is False
    image, label = train[5]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and label == 1


def test_imagenet_hidden_folders_are_no_classes(tmp_path):
    """A notebook's checkpoints folder beside the class folders is neither a class nor read."""
    root = write_imagenet(tmp_path / "imagenet")
    for split in ("train", "val"):
        hidden = root / split / ".ipynb_checkpoints"
        hidden.mkdir()
        shutil.copy(next((root / split / "n00000000").iterdir()), hidden / "copy.jpg")
    _, train, val = load_dataset("imagenet", root)
    assert train.classes == val.classes == ("n00000000", "n00000001", "n00000002")
    assert (len(train), len(val)) == (12, 6)


def test_imagenet_without_class_folders_says_so(tmp_path):
    root = write_imagenet(tmp_path / "imagenet")
    for folder in (root / "val").iterdir():
        shutil.rmtree(folder)
    (root / "val" / ".cache").mkdir()  # hidden only: still no class folder
    with pytest.raises(FileNotFoundError, match="holds no class folders"):
        load_dataset("imagenet", root)


def test_transforms_are_the_pytorch_examples():
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert imagenet_transform(True, 224)(image).shape == (3, 224, 224)
    val = imagenet_transform(False, 224)
    resize, crop = val.transforms[0], val.transforms[1]
    # resize 256 (= 224 / 0.875), centre crop 224
    assert (list(resize.size), list(crop.size)) == ([256], [224, 224])
    x = val(image)
    assert x.dtype == torch.float32 and x.shape == (3, 224, 224) and -3 < x.mean() < 3


def test_batch_decoding_equals_decoding_in_workers(imagenet):
    """The gpu_decode path (here on the CPU) gives the validation images the worker path gives."""
    _, _, val = load_dataset("imagenet", imagenet)
    transform = imagenet_transform(False, 32)
    encoded, labels = collate_encoded([val.with_transform(None, encoded=True)[i] for i in range(4)])
    data, lengths = encoded
    assert data.dtype == torch.uint8 and data.dim() == 1 and len(lengths) == 4 and lengths.sum() == len(data)
    batch = decode_batch(encoded, transform, torch.device("cpu"))
    per_item = torch.stack([val.with_transform(transform)[i][0] for i in range(4)])
    assert batch.shape == (4, 3, 32, 32) and torch.allclose(batch, per_item, atol=1e-6)
    assert labels.tolist() == [val.samples[i][1] for i in range(4)]


# --- Cityscapes, transforms, sampling, canvases ---


def test_label_id_to_train_id_map():
    lut = train_id_lut()
    assert (
        len(CITYSCAPES_CLASSES) == 19
        and CITYSCAPES_CLASSES[0] == "road"
        and CITYSCAPES_CLASSES[-1] == "bicycle"
    )
    assert [lut[i].item() for i in (7, 8, 11, 23, 24, 26, 33)] == [0, 1, 2, 10, 11, 13, 18]
    assert [lut[i].item() for i in (0, 1, 3, 9, 14, 29, 30, 200)] == [255] * 8  # void classes and unknown ids
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


def test_cityscapes_layout_is_read_and_mapped(cityscapes):
    info, train, val = load_dataset("cityscapes", cityscapes)
    assert (len(train), len(val), info.num_classes, info.task) == (4, 2, 19, "segment")
    image, label = train[0]
    assert image.shape == (3, 32, 64) and image.dtype == torch.uint8
    assert label.shape == (32, 64) and set(label.unique().tolist()) <= set(range(19)) | {255}
    assert (label == 255).any()  # ids 0, 1 and 9 (parking) are ignored


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: None, "not a Cityscapes folder"),
        (lambda root: (root / "leftImg8bit" / "train").mkdir(parents=True), "not a Cityscapes folder"),
    ],
)
def test_wrong_cityscapes_layout_is_a_clear_error(tmp_path, damage, message):
    damage(tmp_path)
    with pytest.raises(FileNotFoundError, match=message):
        load_dataset("cityscapes", tmp_path)


def test_missing_label_files_are_named(tmp_path):
    root = write_cityscapes(tmp_path, train=2, val=1)
    next((root / "gtFine" / "train").rglob("*_labelIds.png")).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 2 images .* have no labelIds file"):
        load_dataset("cityscapes", root)


def test_train_transform_crops_pads_with_ignore_and_is_seeded():
    image = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    mask = torch.randint(0, 19, (20, 30), dtype=torch.uint8)
    transform = SegTrainTransform((40, 48), (1.0, 1.0), (0.5,) * 3, (0.25,) * 3)
    x, y = transform(image, mask)
    assert (
        x.shape == (3, 40, 48) and x.dtype == torch.float32 and y.shape == (40, 48) and y.dtype == torch.int64
    )
    assert (y == 255).sum() == 40 * 48 - 20 * 30  # padding is ignored, nothing else
    items = SeededItems(_Apply(transform, image, mask), seed=3)
    a, b, c = items[(0, 1)], items[(0, 1)], items[(1, 1)]
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


class _Apply:
    def __init__(self, transform, image, mask) -> None:
        self.transform, self.image, self.mask = transform, image, mask

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return self.transform(self.image, self.mask)


def test_epoch_sampler_shards_resumes_and_evaluates_each_item_once():
    train = [
        list(EpochSampler(10, seed=1, shuffle=True, rank=r, world_size=3, drop_last=True)) for r in range(3)
    ]
    assert all(len(keys) == 3 for keys in train) and len({k for keys in train for k in keys}) == 9
    sampler = EpochSampler(10, seed=1, shuffle=True)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full
    evaluation = [list(EpochSampler(10, seed=0, shuffle=False, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for keys in evaluation for _, i in keys) == list(range(10))


def test_canvases_label_each_item_with_its_class():
    items = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    items[:, :, 1:3, 1:3] = 200  # a 2x2 blob of ink in each item
    canvases, masks = paste_canvases(items, torch.tensor([0, 5, 9]), 20, size=8, items=(1, 1), seed=0)
    assert canvases.shape == (20, 1, 8, 8) and masks.shape == (20, 8, 8)
    for canvas, mask in zip(canvases, masks):
        assert (mask > 0).sum() == 4 and set(mask.unique().tolist()) <= {0, 1, 6, 10}
        assert torch.equal(canvas[0] > 0, mask > 0)


def test_epoch_and_item_seeds_differ_by_seed_epoch_and_stream():
    seeds = {epoch_seed(s, e, k) for s in range(3) for e in range(5) for k in range(2)}
    assert len(seeds) == 30
    items = {item_seed(s, e, i) for s in range(3) for e in range(3) for i in range(100)}
    assert len(items) == 900 and item_seed(1, 2, 3) == epoch_seed(1, 2, stream=1) * 10_000_019 + 3


# --- data that lies, breaks or attacks ---


class _RunsCode:
    """A pickled object that would run a command when unpickled by pickle.load."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    "file, content, message",
    [
        (
            "batches.meta",
            lambda m: pickle.dumps({"label_names": _RunsCode(m)}),
            "names posix.system, which no CIFAR",
        ),
        (
            "batches.meta",
            lambda m: pickle.dumps({"label_names": ["a"] * 9}),
            "names 9 classes in 'label_names', not 10",
        ),
        ("batches.meta", lambda m: pickle.dumps({"names": ["a"] * 10}), "has no 'label_names' entry"),
        ("data_batch_2", lambda m: b"", "is not a readable CIFAR python pickle"),
        ("data_batch_2", lambda m: bytes(range(256)) * 4, "is not a CIFAR python pickle"),
        ("data_batch_2", lambda m: pickle.dumps([1, 2]), "holds a list, not the dict of a CIFAR file"),
        (
            "data_batch_2",
            lambda m: pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 3}),
            "holds 4 images but 3 labels",
        ),
        (
            "data_batch_2",
            lambda m: pickle.dumps({"data": np.full((2, 3072), 300), "labels": [0, 1]}),
            "holds pixel values outside 0..255",
        ),
        (
            "test_batch",
            lambda m: pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 57]}),
            r"holds labels outside 0..9 \(found 3..57\)",
        ),
    ],
)
def test_cifar_files_that_lie_break_or_attack_are_refused_by_name(tmp_path, file, content, message):
    write_cifar10(tmp_path, per_batch=5, test=5)
    marker = tmp_path / "ran"
    (tmp_path / "cifar-10-batches-py" / file).write_bytes(content(str(marker)))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=f"{file} {message}|{file} .*{message}"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()  # the hostile pickle ran nothing


def test_cifar_files_with_bytes_keys_and_names_load(tmp_path):
    """Pickles written by Python 2 carry bytes; their keys and names are read as text."""
    write_cifar10(tmp_path, per_batch=5, test=5)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    with pytest.warns(UserWarning):
        _, train, _ = load_dataset("cifar10", tmp_path)
    assert train.classes[3] == "c3"


@pytest.mark.parametrize(
    "file, damage, message",
    [
        ("train-images-idx3-ubyte.gz", lambda raw: raw[:-7], "is not a readable gzip file"),
        ("train-images-idx3-ubyte.gz", lambda raw: b"", "is not an IDX file of unsigned bytes"),
        ("train-labels-idx1-ubyte.gz", lambda raw: gzip.compress(gzip.decompress(raw)[:-3]), "is truncated"),
        (
            "t10k-labels-idx1-ubyte.gz",
            lambda raw: gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03"),
            "holds 3 labels for the 5 images",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            lambda raw: gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x0c\x00\x00\x00"),
            r"holds labels outside 0..9 \(max 12\)",
        ),
    ],
)
def test_fashion_mnist_files_that_lie_or_break_are_refused_by_name(tmp_path, file, damage, message):
    folder = write_fashion_mnist(tmp_path, train=5, test=5)
    path = folder / file
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=f"{file} {message}"):
        load_dataset("fashion_mnist", folder)


def test_file_loaders_take_no_more_workers_than_cores(tmp_path):
    import os

    from srblock.data.torch_loader import make_file_loader, usable_workers

    cores = len(os.sched_getaffinity(0))
    assert usable_workers(0) == 0 and usable_workers(1) == 1 and usable_workers(cores + 7) == cores
    loader = make_file_loader(list(range(8)), batch_size=4, train=False, seed=0, num_workers=cores + 3)
    assert loader.num_workers == cores


def test_the_data_fingerprint_sees_two_same_size_pictures_swapped_between_classes(tmp_path):
    """Names, labels and sizes alone let a resume go on with two pictures of one size swapped."""
    import json

    from srblock.data import DATASETS
    from srblock.data.imagenet import ImageFiles
    from srblock.run_folder import DATA_FILE, RunFolder
    from srblock.splits import Splits

    rng = np.random.default_rng(0)
    paths = [tmp_path / "data" / "train" / name / "1.png" for name in ("a", "b")]
    for path in paths:
        path.parent.mkdir(parents=True)
        path.write_bytes(rng.integers(0, 256, 10_000, dtype=np.uint8).tobytes())  # one size, two pictures
    files = ImageFiles([(str(p), k) for k, p in enumerate(paths)], ("a", "b"))
    splits = Splits(DATASETS["folder"], files, files, files)
    run = RunFolder(tmp_path / "run")
    run.check_data(splits, tmp_path / "data")  # the run starts: data.json
    run.check_data(splits, tmp_path / "data")  # the same data: goes on
    a, b = (p.read_bytes() for p in paths)
    paths[0].write_bytes(b)
    paths[1].write_bytes(a)
    with pytest.raises(ValueError, match="train: the same names, labels and sizes, other contents"):
        run.check_data(splits, tmp_path / "data")
    # a data.json of an earlier release (names, labels, sizes) still reads: what it lacks is not compared
    recorded = json.loads((tmp_path / "run" / DATA_FILE).read_text())
    for split in ("train", "val", "test"):
        del recorded[split]["ends_sha1"]
    (tmp_path / "run" / DATA_FILE).write_text(json.dumps(recorded))
    run.check_data(splits, tmp_path / "data")
