"""What several test modules use: small data sets in the standard on-disk layouts, the command
line run as a user runs it, SR memories filled as training would, fabricated run results."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


def argv(line: str, **paths: object) -> list[str]:
    """A command line written as one string, `{name}` fields filled after splitting (so a path with
    spaces stays one argument): argv("train cifar10 --data {data}", data=folder)."""
    return [part.format(**{k: str(v) for k, v in paths.items()}) for part in line.split()]


def trained_in(out: Path, recipe: str, words: list[str], seed: int = 0) -> Path:
    """The folder `srblock train RECIPE WORDS --out OUT` trains seed `seed` in: its configuration
    named after what WORDS' --set changed of the recipe (test_run_folder.py checks that rule)."""
    from srblock.keys import make_config, parse_set, recipe_values, set_changes
    from srblock.recipes import group_name
    from srblock.run_folder import RunFolder

    overrides = parse_set([words[i + 1] for i, word in enumerate(words[:-1]) if word == "--set"])
    cfg = make_config(recipe, {**overrides, "seed": seed})
    return RunFolder.of(out, group_name(recipe), cfg, set_changes(cfg, overrides, recipe_values(recipe))).path


# the smallest classification runs the engine accepts: a tiny zoo model, small batches, no progress output
TINY = ["--set", "model=resnet10s_cifar", "--set", "batch_size=32", "--set", "eval_batch_size=64", "--quiet"]
# one epoch of the smallest ResNet on a class folder of small pictures (write_image_folder)
FOLDER_RUN = (
    "train folder --data {data} --out {out} --set model=resnet10s_cifar --set image_size=32 "
    "--set augment=padcrop --set epochs=1 --set batch_size=32 --set num_workers=0 --quiet"
)
# the smallest segmentation runs: two iterations on 32x48 crops
TINY_SEG = argv(
    "--set iterations=2 --set eval_interval=1 --set batch_size=2 --set crop_size=32x48 --set num_workers=0 "
    "--set ms_scales=[0.5,1.0] --quiet"
)


# Runs `srblock train` and kills it with SIGKILL right after training step KILL_AT (counted over
# the whole run), writing that step's number to MARKER first: a kill at a chosen point of an epoch.
KILLER = """
import os, signal, sys
from srblock.cli import main
from srblock.train import progress

update, steps = progress.Progress.update, []
def update_then_die(self, **values):
    update(self, **values)
    steps.append(1)
    if len(steps) == int(os.environ["KILL_AT"]):
        open(os.environ["MARKER"], "w").write(str(len(steps)))
        os.kill(os.getpid(), signal.SIGKILL)
progress.Progress.update = update_then_die
sys.exit(main(sys.argv[1:]))
"""

# Runs `srblock train` and, right after training step PAUSE_AT, writes MARKER, says so on the pipe
# READY_FD and sleeps: a run held in the middle of an epoch, for a second command to meet.
PAUSER = KILLER.replace(
    "os.kill(os.getpid(), signal.SIGKILL)",
    "os.write(int(os.environ['READY_FD']), b'1'); __import__('time').sleep(120)",
).replace("KILL_AT", "PAUSE_AT")


def paused_run(args: list[str], env: dict[str, str], timeout: float = 120, **popen) -> subprocess.Popen:
    """The PAUSER harness started with `args`, returned once it has paused at PAUSE_AT: it says so
    through a pipe, so the test waits for that event (or fails after `timeout`), not by polling."""
    import select

    read, write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSER, *args], env={**env, "READY_FD": str(write)}, pass_fds=(write,), **popen
    )
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], timeout)
        paused = bool(ready) and os.read(read, 1) == b"1"  # end of file: the run ended first
    finally:
        os.close(read)
    if not paused:
        process.kill()
        process.wait()
        raise AssertionError(
            f"the run never paused at step {env.get('PAUSE_AT')} (exit {process.returncode})"
        )
    return process


def cli_env(**values: str) -> dict[str, str]:
    """The environment of a command run in a fresh process: one thread, no warnings, and `values`
    (e.g. KILL_AT and MARKER for the KILLER harness)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **values}


def srblock_command(line: str, **paths: object) -> list[str]:
    """`python -m srblock` and a command line written as one string (see argv), to start as a process."""
    return [sys.executable, "-m", "srblock", *argv(line, **paths)]


def srblock_cli(*args: str, env_extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """The installed console script's code path, in a fresh process (as a user runs it), one thread."""
    env = cli_env(**(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "srblock", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        **kw,
    )


def main_one_thread(*args: str) -> int:
    """`srblock ARGS` in this process on one thread, as `srblock_cli` runs it in a fresh one
    (OMP_NUM_THREADS=1): the same kernels, so the two compare bit for bit, without the
    seconds a fresh process spends importing."""
    from srblock.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(list(args))
    finally:
        torch.set_num_threads(threads)


def fill_memory(model: torch.nn.Module, std: float = 1.0) -> None:
    """Gives every SR block a non-zero memory, as training would."""
    from srblock import sr_blocks

    with torch.no_grad():
        for _, block in sr_blocks(model):
            block.memory.normal_(0.0, std)


def fabricate_result(root: Path, configuration: str, seed: int, acc: float, **extra) -> Path:
    """A finished run's result.json (only), as `srblock table` reads it."""
    folder = root / configuration / f"seed{seed}"
    folder.mkdir(parents=True)
    result = {
        "test_acc": acc,
        "seed": seed,
        "oh_pct": 1.09,
        "sr_oh_pct": 0.3,
        "config": {"sr_stage": 3, "sr_memory_blocks": 2},
        **extra,
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def _images(rng: np.random.Generator, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """32x32 RGB images whose colour depends on the label, so a network can learn something."""
    base = (labels[:, None] * (255 // num_classes)).astype(np.int32)
    noise = rng.integers(0, 64, size=(len(labels), 3072))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_cifar10(root: Path, per_batch: int = 100, test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        labels = rng.integers(0, 10, size=n)
        with (folder / name).open("wb") as f:
            pickle.dump({"data": _images(rng, labels, 10), "labels": labels.tolist()}, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return root


def write_cifar100(root: Path, train: int = 300, test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("test", test)):
        labels = rng.integers(0, 100, size=n)
        with (folder / name).open("wb") as f:
            pickle.dump(
                {
                    "data": _images(rng, labels, 100),
                    "fine_labels": labels.tolist(),
                    "coarse_labels": (labels // 5).tolist(),
                },
                f,
            )
    with (folder / "meta").open("wb") as f:
        pickle.dump(
            {
                "fine_label_names": [f"fine{i}" for i in range(100)],
                "coarse_label_names": [f"c{i}" for i in range(20)],
            },
            f,
        )
    return root


def write_fashion_mnist(folder: Path, train: int = 200, test: int = 50, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        header = b"\x00\x00\x08\x01" + n.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    return folder


def write_imagenet(
    root: Path, classes: int = 3, per_class: int = 4, val_per_class: int = 2, seed: int = 0
) -> Path:
    """An ImageFolder tree of JPEGs (train/ and val/, one folder per class), sizes varying as ImageNet's."""
    from torchvision.io import write_jpeg

    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = rng.integers(40, 80, size=2)
                image = np.clip(c * 80 + rng.integers(0, 60, size=(3, h, w)), 0, 255).astype(np.uint8)
                write_jpeg(torch.from_numpy(image), str(folder / f"img_{i}.JPEG"))
    return root


def write_cityscapes(
    root: Path, train: int = 4, val: int = 2, size: tuple[int, int] = (32, 64), seed: int = 0
) -> Path:
    """leftImg8bit/ and gtFine/ trees of PNGs with labelIds (some ignored: 0, 1, 9), two cities per split."""
    from torchvision.io import write_png

    rng = np.random.default_rng(seed)
    # unlabeled, ego vehicle, road, ..., parking (ignored)
    ids = np.array([0, 1, 7, 8, 9, 11, 21, 23, 24, 26])
    for split, n in (("train", train), ("val", val)):
        for i in range(n):
            city = f"city{i % 2}"
            stem = f"{city}_{i:06d}_000019"
            label = ids[rng.integers(0, len(ids), size=size)].astype(np.uint8)
            image = np.clip(label[None] * 9 + rng.integers(0, 30, size=(3, *size)), 0, 255).astype(np.uint8)
            for kind, name, array in (
                ("leftImg8bit", f"{stem}_leftImg8bit.png", image),
                ("gtFine", f"{stem}_gtFine_labelIds.png", label[None]),
            ):
                folder = root / kind / split / city
                folder.mkdir(parents=True, exist_ok=True)
                write_png(torch.from_numpy(np.ascontiguousarray(array)), str(folder / name))
    return root


def write_image_folder(
    root: Path,
    classes: tuple[int, ...] = (0, 1, 7),
    per_class: tuple[int, int, int] = (60, 15, 15),
    test: bool = True,
) -> Path:
    """Real Fashion-MNIST pictures as PNG files in class folders, root/{train,val,test}/<class>/, in
    every mode a user's folder may hold (grey, RGB, RGBA, palette) and at two sizes."""
    from PIL import Image

    from srblock.data import load_dataset

    _, train, _ = load_dataset("fashion_mnist", None)
    modes = ("L", "RGB", "RGBA", "P")
    names = [train.classes[c].replace("/", "-") for c in classes]
    splits = ("train", "val", "test") if test else ("train", "val")
    for class_index, name in zip(classes, names):
        found = (train.labels == class_index).nonzero().flatten().tolist()
        start = 0
        for split, count in zip(splits, per_class):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, index in enumerate(found[start : start + count]):
                image = Image.fromarray(train.images[index, 0].numpy(), "L").convert(modes[k % 4])
                if k % 3 == 0:
                    image = image.resize((40, 30))
                image.save(folder / f"{index}.png")
            start += count
    return root
