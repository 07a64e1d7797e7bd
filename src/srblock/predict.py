"""A trained run on new images: class probabilities (classification) or masks (segmentation).

Reads only the run folder (config.yaml, best.ckpt, result.json for the class names): no training
data and no training stack. Each image is prepared as the run's evaluation prepared its own: read
as the run's channels, then its validation transform (files), a resize to the training size
(CIFAR, Fashion-MNIST), or the whole image (segmentation), normalised with the data set's values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.io import encode_png

from .atomic_files import write_atomic
from .busy import working
from .config import TrainConfig
from .data import DATASETS
from .data.images import IMAGE_EXTENSIONS, image_paths, read_image
from .hub import HUB_CONFIG, HUB_WEIGHTS, read_hub_config
from .run_folder import CONFIG_FILE, RunFolder
from .run_model import TrainedModel, trained_model

# the columns of predict's rows: classification's, then segmentation's
CSV_COLUMNS = (("file", "rank", "class", "probability"), ("file", "mask", "overlay", "main class"))


def image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """The images named, and those under the folders named (recursively, sorted)."""
    found: list[Path] = []
    for given in inputs:
        path = Path(given).expanduser()
        if path.is_dir():
            inside = image_paths(path)
            if not inside:
                raise FileNotFoundError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist: give image files or folders of images")
    return found


def is_hub_folder(folder: str | Path) -> bool:
    """An exported folder (its config.json, and no run's config.yaml), whole or not: reading one
    without its weights is an error that names them."""
    return (Path(folder) / HUB_CONFIG).is_file() and not (Path(folder) / CONFIG_FILE).is_file()


def run_classes(folder: Path, cfg: TrainConfig) -> tuple[str, ...]:
    """The class names a run (or an export) was trained on: an exported folder's label_names where
    the config has none, else the run folder's (RunFolder.class_names)."""
    if not cfg.class_names() and is_hub_folder(folder):
        names = read_hub_config(folder / HUB_CONFIG).get("label_names")
        if names:
            return tuple(names)
    return RunFolder(folder).class_names(cfg)


def eval_transform(cfg: TrainConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 image -> the float input the run's evaluation fed its model."""
    channels = cfg.input_size()[0]
    mean, std = DATASETS[cfg.dataset].stats(channels)
    files = cfg.file_transform(train=False)
    if files is not None:
        return files
    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    size = None if cfg.SEGMENTS else cfg.input_size()[1:]

    def prepare(image: torch.Tensor) -> torch.Tensor:
        x = image.float() / 255.0
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        return (x - mean_t) / std_t

    return prepare


@dataclass
class Predictor:
    """A run's model, ready for new images."""

    folder: Path
    model: torch.nn.Module
    cfg: TrainConfig
    classes: tuple[str, ...]
    transform: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> Predictor:
        folder = Path(folder)
        model, cfg, _ = hub_trained_model(folder) if is_hub_folder(folder) else trained_model(folder)
        device = torch.device(device)
        return cls(folder, model.to(device), cfg, run_classes(folder, cfg), eval_transform(cfg), device)

    @property
    def is_segmentation(self) -> bool:
        return self.cfg.SEGMENTS

    def prepare(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """(the uint8 image as read, the model's input)."""
        image = read_image(path, self.cfg.input_size()[0])
        return image, self.transform(image)

    @torch.no_grad()
    def classify(self, paths: list[Path], topk: int = 1, batch: int = 32) -> list[dict]:
        """Per image, its `topk` classes with their probabilities, most likely first."""
        if self.is_segmentation:
            raise ValueError(f"{self.folder} is a segmentation run: it predicts masks, not classes")
        topk = min(topk, len(self.classes))
        rows = []
        for start in working(range(0, len(paths), batch), f"predicting {len(paths)} images (batches)"):
            chunk = paths[start : start + batch]
            x = torch.stack([self.prepare(p)[1] for p in chunk]).to(self.device)
            probs = self.model(x).float().softmax(1)
            values, indices = probs.topk(topk, dim=1)
            for path, vs, ks in zip(chunk, values.tolist(), indices.tolist()):
                rows += [
                    dict(zip(CSV_COLUMNS[0], (str(path), r + 1, self.classes[k], v)))
                    for r, (v, k) in enumerate(zip(vs, ks))
                ]
        return rows

    @torch.no_grad()
    def segment(self, paths: list[Path], out: Path) -> list[dict]:
        """Per image, a mask PNG (the class index of every pixel) and an overlay PNG (the image with
        the classes' colours, matplotlib's tab20) in `out`."""
        from .models.segmentation import main_output

        if not self.is_segmentation:
            raise ValueError(f"{self.folder} is a classification run: it predicts classes, not masks")
        colours = _palette(len(self.classes))
        stems = [p.stem for p in paths]
        clash = next((s for s in stems if stems.count(s) > 1), None)
        if clash is not None:
            raise ValueError(
                f"two images are named {clash!r} (their masks would overwrite each other): predict them "
                "in separate calls with separate --out folders"
            )
        rows = []
        for path in working(paths, "segmenting (images)"):
            image, x = self.prepare(path)
            mask = main_output(self.model(x[None].to(self.device))).argmax(1)[0].cpu().to(torch.uint8)
            if image.shape[0] == 1:
                image = image.expand(3, -1, -1)
            overlay = (
                (0.5 * image.float() + 0.5 * colours[mask.long()].permute(2, 0, 1)).round().to(torch.uint8)
            )
            stem = path.stem
            mask_path, overlay_path = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
            for target, tensor in ((mask_path, mask[None]), (overlay_path, overlay)):
                data = encode_png(tensor).numpy().tobytes()
                write_atomic(target, lambda f, data=data: f.write(data))
            counts = torch.bincount(mask.flatten().long(), minlength=len(self.classes))
            main = self.classes[int(counts.argmax())]
            rows.append(dict(zip(CSV_COLUMNS[1], (str(path), str(mask_path), str(overlay_path), main))))
        return rows


def _palette(count: int) -> torch.Tensor:
    """One RGB colour (0-255) per class, matplotlib's tab20 in class order (as the figures use)."""
    import matplotlib

    colours = [matplotlib.colormaps["tab20"](k % 20)[:3] for k in range(count)]
    return (torch.tensor(colours) * 255).round()


def hub_trained_model(folder: str | Path) -> TrainedModel:
    """An exported folder's model with its weights, in eval mode, with the run's config."""
    import timm

    from . import timm_models  # noqa: F401  (the zoo in timm's registry)
    from .keys import config_from_mapping

    folder = Path(folder)
    config = read_hub_config(folder / HUB_CONFIG)
    if not (folder / HUB_WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{folder} holds {HUB_CONFIG} but no {HUB_WEIGHTS}: copy it too, or export the run again "
            f"(srblock export RUN --hf {folder})"
        )
    if "srblock" not in config:
        raise ValueError(f"{folder / HUB_CONFIG} was not written by srblock export --hf: give a run folder")
    cfg = config_from_mapping(config["srblock"]["config"], str(folder / HUB_CONFIG))
    check_export(config, cfg, folder / HUB_CONFIG)
    try:
        model = timm.create_model(
            config["architecture"], pretrained=True, pretrained_cfg_overlay={"file": str(folder)}
        )
    except TypeError as err:  # model_args edited to hold a keyword the model does not take
        reason = str(err).split(";")[0]
        raise ValueError(
            f"{folder / HUB_CONFIG}'s model_args do not build its model ({reason}): restore it, or export "
            "the run again (srblock export RUN --hf DIR)"
        ) from None
    check_export_weights(model, folder, config["num_classes"])
    return TrainedModel(model.eval(), cfg, cfg.input_size())


def check_export(config: dict, cfg: TrainConfig, path: Path) -> None:
    """An export's config.json agrees with itself before a model is built from it: its architecture
    is one of srblock's in timm's registry, and its class count is the same everywhere it is stated
    (num_classes, model_args, label_names, the run's config). An edited file is one line, not an
    IndexError in a prediction or a model answering with names that are not its classes."""
    from .timm_models import PREFIX, TIMM_NAMES

    again = "restore it, or export the run again (srblock export RUN --hf DIR)"
    architecture = config.get("architecture")
    if architecture not in TIMM_NAMES:
        raise ValueError(
            f"{path}: architecture {architecture!r} is none of srblock's models in timm's registry "
            f"({', '.join(TIMM_NAMES)}): {again}"
        )
    counts = {
        "num_classes": config.get("num_classes"),
        "model_args' num_classes": config.get("model_args", {}).get("num_classes"),
        "the run's classes": cfg.num_classes(),
    }
    if config.get("label_names"):
        counts["label_names"] = len(config["label_names"])
    if len(set(counts.values())) > 1:
        said = ", ".join(f"{what} {count}" for what, count in counts.items())
        raise ValueError(f"{path} states different numbers of classes ({said}): {again}")
    if architecture != f"{PREFIX}{cfg.model}":
        raise ValueError(f"{path}: architecture {architecture} is not the run's model {cfg.model}: {again}")
    # what timm's data config reads must be what the run (and so srblock predict) prepares images by
    mean, std = DATASETS[cfg.dataset].stats(cfg.input_size()[0])
    run = {"input_size": list(cfg.input_size()), "mean": list(mean), "std": list(std)}
    shared = config.get("pretrained_cfg", {})
    other = [k for k, v in run.items() if k in shared and shared[k] != v]
    if other:
        raise ValueError(
            f"{path}: pretrained_cfg's {other[0]} {shared[other[0]]} is not the run's {run[other[0]]} (timm "
            f"would prepare images otherwise than the run did): {again}"
        )


def check_export_weights(model: torch.nn.Module, folder: Path, num_classes: int) -> None:
    """Every tensor of the exported weights is the model's, at its shape: timm starts a head of
    another class count anew (fine-tuning), which would predict at random under the export's names."""
    from safetensors.torch import load_file

    own, weights = model.state_dict(), load_file(str(folder / HUB_WEIGHTS))
    other = [k for k, v in weights.items() if k in own and v.shape != own[k].shape]
    if other:
        shape = " x ".join(map(str, weights[other[0]].shape))
        raise ValueError(
            f"{folder / HUB_WEIGHTS} does not fit its {HUB_CONFIG} ({other[0]} is {shape}, not for "
            f"{num_classes} classes): restore config.json, or export the run again"
        )
