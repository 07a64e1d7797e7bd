"""The paper's analyses of a trained run (`srblock analyze`) and the HTML report (`srblock report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .analyze import analyze, classes_of, labels_of, load_run, pick_classes, write_json
from .plots import ablation_figure, features_figure, memory_figure, separation_figure, weights_figure


def _slug(block: str) -> str:
    return block.removesuffix(".sr").replace(".", "_")


WEIGHT_KEYS = (
    "memory_blocks",
    "images",
    "weight_mean",
    "weight_std",
    "weight_entropy",
    "max_entropy",
    "unused_blocks",
    "nearest_centroid_acc",
    "chance_acc",
    "weight_sums",
)
FEATURE_KEYS = ("channels", "images", "pre_mean", "post_mean", "delta_mean")
MEMORY_KEYS = ("channels", "size", "memory_blocks", "memory_channel_means", "memory_spatial_means")


def _select(blocks: dict, keys: tuple[str, ...], per_class: bool = False) -> dict:
    """The `keys` of each block's numbers (and of each class's, with per_class): one JSON file's part."""
    out = {}
    for name, block in blocks.items():
        out[name] = {k: block[k] for k in keys if k in block}
        if per_class:
            out[name]["per_class"] = {
                c: {k: v for k, v in stats.items() if k in keys} for c, stats in block["per_class"].items()
            }
    return out


def run_analysis(
    folder: str | Path,
    classes: list[str] | None = None,
    per_class: int = 50,
    split: str = "val",
    data_root: str | Path | None = None,
    *,
    model: Any = None,
    splits: dict[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Path]:
    """Writes RUN_DIR/analysis/: weights.json, features.json, memory.json, ablation.json and
    figures. A run of `srblock.fit` passes `model` and `splits`; `device`: where the model runs
    (see `load_run`)."""
    run = load_run(folder, data_root, model=model, splits=splits, device=device)
    # the default classes come from those the split holds (an unknown split is analyze's error)
    present = labels_of(run.splits[split]).unique().tolist() if not classes and split in run.splits else None
    picked = pick_classes(classes_of(run, run.splits["test"]), classes, present=present)
    result = analyze(run, picked, per_class=per_class, split=split)
    out = Path(folder) / "analysis"
    out.mkdir(exist_ok=True)
    blocks = result["blocks"]
    header = {"split": split, "per_class": per_class, "classes": result["classes"]}
    files = {
        "weights.json": {**header, "blocks": _select(blocks, WEIGHT_KEYS, per_class=True)},
        "features.json": {**header, "blocks": _select(blocks, FEATURE_KEYS, per_class=True)},
        "memory.json": _select(blocks, MEMORY_KEYS),
        "ablation.json": result["ablation"],
    }
    paths = {}
    for name, data in files.items():
        write_json(out / name, data)
        paths[name] = out / name
    for block, data in blocks.items():
        for kind, draw in (
            ("weights", weights_figure),
            ("features", features_figure),
            ("memory", memory_figure),
            ("separation", separation_figure),
        ):
            path = out / f"{kind}_{_slug(block)}.png"
            paths[path.name] = draw(block, data, path)
    paths["ablation.png"] = ablation_figure(result["ablation"], out / "ablation.png")
    return paths


__all__ = ["analyze", "load_run", "pick_classes", "run_analysis"]
