"""A run's model: built from its config (its SR block sized for the images it trains on), and a
finished run's model with its tested checkpoint loaded, from the run folder alone."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .config import TrainConfig
from .factory import create_model
from .insert import evaluating
from .registry import PYTHON_MODEL
from .run_folder import BEST_CKPT, CONFIG_FILE, RESULT_FILE, RunFolder


def build_model(cfg: TrainConfig, pretrained: bool = False) -> nn.Module:
    """The run's model, with its SR block sized for the images it is trained on; with `pretrained`,
    the starting weights the config names (a run's own checkpoints replace them on resume)."""
    if cfg.model.startswith(PYTHON_MODEL):
        raise ValueError(
            f"{cfg.model} is a model given to srblock.fit in Python: build it again and load the run's "
            "best.ckpt into it (torch.load(path, weights_only=True)['model'])"
        )
    if cfg.num_classes() == 0:
        raise ValueError(
            f"{cfg.dataset} runs need a data folder: pass --data DIR holding train/<class>/<image>"
        )
    input_size = cfg.input_size()
    return create_model(
        cfg.model,
        num_classes=cfg.num_classes(),
        in_chans=input_size[0],
        sr_stage=cfg.sr_stage,
        sr=cfg.sr,
        input_size=input_size,
        **cfg.model_kwargs(),
        **({**cfg.weights(), "pretrained_partial": cfg.pretrained_partial} if pretrained else {}),
    )


class TrainedModel(NamedTuple):
    model: nn.Module
    cfg: TrainConfig
    input_size: tuple[int, int, int]


def trained_model(folder: str | Path) -> TrainedModel:
    """A run folder's model with its tested checkpoint (best.ckpt) loaded, in eval mode, with the
    run's config and the input size it was trained at; no data needed."""
    folder = RunFolder(folder)
    if not folder.started():
        raise FileNotFoundError(
            f"{folder} is not a run folder (no {CONFIG_FILE}): give OUT/<recipe>/<configuration>/seed<k>"
        )
    if not (folder / BEST_CKPT).is_file() and folder.has_result():
        raise FileNotFoundError(
            f"{folder} is finished ({RESULT_FILE}) but its tested checkpoint {BEST_CKPT} is gone: "
            "delete the folder and train the run again"
        )
    if not (folder / BEST_CKPT).is_file() and folder.diverged():
        raise FileNotFoundError(
            f"{folder} stopped as diverged before its first checkpoint ({folder.diverged()}); --resume "
            "skips it: train it again as that line says"
        )
    if not (folder / BEST_CKPT).is_file():
        raise FileNotFoundError(
            f"{folder} has no {BEST_CKPT} yet: finish the run first (srblock train ... --resume)"
        )
    cfg = folder.config()
    model = build_model(cfg)
    advice = f"train the run again (delete {folder} or use another --out)"  # its tested weights are gone
    folder.load_weights(model, cfg, BEST_CKPT, advice)
    return TrainedModel(model.eval(), cfg, cfg.input_size())


def check_input_size(model: nn.Module, cfg: TrainConfig) -> None:
    """One forward of one blank image at the run's size, so a size the network cannot take is one
    line now rather than a traceback in the first step."""
    if cfg.SEGMENTS:  # the zoo's segmentation models take any crop
        return
    size = cfg.input_size()
    try:
        with evaluating(model), torch.no_grad():
            model(torch.zeros(1, *size))
    except (RuntimeError, ValueError, AssertionError) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{cfg.model} cannot take {size[1]}x{size[2]} images with {size[0]} channels ({reason}): "
            "set image_size (or in_chans) to what it takes"
        ) from None
