"""What an image file becomes (data/images.py): every mode and format the readers meet, as the
run's 1 or 3 channels of uint8, by the rules the module states; and the probe that refuses files
that are not images before a run trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srblock.data.folder import load_folder
from srblock.data.imagenet import ImageFiles
from srblock.data.images import UnreadableImage, class_folders, read_image

from .helpers import write_image_folder

RNG = np.random.default_rng(0)


def pixels(*shape: int, dtype=np.uint8, high: int = 256) -> np.ndarray:
    return RNG.integers(0, high, size=shape, dtype=np.int64).astype(dtype)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file per mode a user's folder may hold, with the pixels PIL reads back (the reference)."""
    root = tmp_path_factory.mktemp("modes")
    rgb, grey = pixels(12, 16, 3), pixels(12, 16)
    made = {
        "rgb.webp": Image.fromarray(rgb),
        "rgba.webp": Image.fromarray(np.dstack([rgb, pixels(12, 16)]), "RGBA"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "grey_alpha.png": Image.fromarray(np.dstack([grey, pixels(12, 16)]), "LA"),
        "rgba.png": Image.fromarray(np.dstack([rgb, pixels(12, 16)]), "RGBA"),
        "grey.gif": Image.fromarray(grey),
    }
    for name, image in made.items():
        image.save(root / name, **({"lossless": True} if name.endswith(".webp") else {}))
    frames = [Image.fromarray(pixels(12, 16, 3)).convert("P") for _ in range(3)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:])
    deep = pixels(12, 16, dtype=np.uint16, high=65536)
    Image.fromarray(deep).save(root / "deep.png")  # 16-bit grey
    return root, deep


@pytest.mark.parametrize(
    "name", ["rgb.webp", "rgba.webp", "palette.png", "grey_alpha.png", "rgba.png", "grey.gif", "animated.gif"]
)
def test_every_mode_becomes_the_runs_channels_as_pil_converts_it(files, name):
    root, _ = files
    with Image.open(root / name) as image:  # its first frame, as PIL converts it
        rgb, grey = np.array(image.convert("RGB")), np.array(image.convert("L"))
    colour, mono = read_image(root / name, 3), read_image(root / name, 1)
    assert colour.dtype == mono.dtype == torch.uint8
    assert colour.shape == (3, 12, 16) and mono.shape == (1, 12, 16)
    assert torch.equal(colour, torch.from_numpy(rgb).permute(2, 0, 1))
    # luma: PIL's integer weights against torchvision's float ones, one grey level apart at most
    assert (mono[0].int() - torch.from_numpy(grey).int()).abs().max() <= 1


def test_sixteen_bits_give_their_top_eight_and_a_data_set_reads_every_mode(files):
    root, deep = files
    assert torch.equal(read_image(root / "deep.png", 1)[0], torch.from_numpy((deep >> 8).astype(np.uint8)))
    assert torch.equal(read_image(root / "deep.png", 3), read_image(root / "deep.png", 1).expand(3, -1, -1))
    samples = [(str(p), 0) for p in sorted(root.iterdir())]
    for channels in (1, 3):  # a grey run once tracebacked on WebP and animated GIF
        items = ImageFiles(samples, ("a",), channels=channels)
        assert {tuple(items[i][0].shape) for i in range(len(items))} == {(channels, 12, 16)}


def test_files_that_are_not_images_are_refused_before_training(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class=(4, 2, 2))
    sneakers = data / "test" / "Sneaker"
    (sneakers / "notes.png").write_text("taken on 2026-11-27")
    with pytest.raises(UnreadableImage, match=r"notes.png is not an image \(text, or a format"):
        load_folder(data)
    (sneakers / "more.jpg").write_text("x")
    with pytest.raises(
        UnreadableImage,
        match=r"more.jpg is not an image .*\(and 1 more files in .*test\): remove or replace it",
    ):
        load_folder(data)
    (sneakers / "notes.png").unlink()
    (sneakers / "more.jpg").unlink()
    Image.fromarray(pixels(8, 8, 3)).save(sneakers / "really.png", format="BMP")
    with pytest.raises(UnreadableImage, match="really.png is a BMP image under another name: convert it"):
        load_folder(data)


def test_links_hidden_folders_and_odd_names_as_the_training_reads_them(tmp_path):
    import shutil

    data = write_image_folder(tmp_path / "data", per_class=(4, 2, 2))
    train = data / "train"
    (train / "Sneaker" / ".thumbs").mkdir()
    Image.fromarray(pixels(8, 8, 3)).save(train / "Sneaker" / ".thumbs" / "a.bmp")  # hidden: not read
    shutil.copy(
        next((train / "Sneaker").glob("*.png")), train / "Sneaker" / "photo.jfif"
    )  # a JPEG's other name
    Image.fromarray(pixels(8, 8, 3)).save(train / "Sneaker" / "photo.jfif", format="JPEG")
    assert len(load_folder(data)[0]) == 13
    (train / "Sneaker" / "loop").symlink_to("..")  # back up to train/: every class's files as Sneaker
    with pytest.raises(
        ValueError, match=r"Sneaker/loop/.* is a link into another class's folder .* as Sneaker"
    ):
        load_folder(data)
    (train / "Sneaker" / "loop").unlink()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.fromarray(pixels(8, 8, 3)).save(outside / "b.bmp")
    (train / "Sneaker" / "more").symlink_to(outside)  # a linked folder is read, so its .bmp is refused
    with pytest.raises(
        ValueError, match=r"more/b.bmp is an image in a format srblock does not read \(.bmp\)"
    ):
        load_folder(data)


def test_class_folders_are_the_visible_folders_sorted_through_links(tmp_path):
    for name in ("b", "a", ".git", ".ipynb_checkpoints"):
        (tmp_path / "split" / name).mkdir(parents=True)
    (tmp_path / "split" / "notes.txt").write_text("not a class")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "split" / "c").symlink_to(tmp_path / "elsewhere")
    assert class_folders(tmp_path / "split") == ["a", "b", "c"]


def test_images_the_decoder_cannot_take_are_refused_before_training(tmp_path):
    data = write_image_folder(tmp_path / "data", per_class=(4, 2, 2))
    frames = [Image.fromarray(pixels(8, 8, 3)) for _ in range(2)]
    animated = data / "val" / "Trouser" / "moving.webp"
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    with pytest.raises(
        UnreadableImage, match="moving.webp is an animated WebP, which torchvision cannot decode"
    ):
        load_folder(data)
    animated.unlink()
    huge = data / "val" / "Trouser" / "huge.png"
    Image.new("L", (20_000, 20_000)).save(huge)  # 400 M pixels, a few hundred KB
    with pytest.raises(
        UnreadableImage, match=r"huge.png is too large to read safely \(Image size \(400000000 pixels\)"
    ):
        load_folder(data)


def test_predict_reads_a_folder_as_training_does(tmp_path):
    from srblock.predict import image_files

    Image.fromarray(pixels(8, 8)).save(tmp_path / "shoe.png")
    (tmp_path / "._shoe.png").write_bytes(b"\x00\x05\x16\x07")  # macOS's metadata beside it
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.fromarray(pixels(8, 8)).save(tmp_path / ".ipynb_checkpoints" / "shoe.png")
    assert image_files([tmp_path]) == [tmp_path / "shoe.png"]
    Image.fromarray(pixels(8, 8, 3)).save(tmp_path / "scan.tif")
    with pytest.raises(ValueError, match="scan.tif is an image in a format srblock does not read"):
        image_files([tmp_path])
