"""The paper's analyses of a trained run (`srblock analyze`) and the HTML report (`srblock report`)."""

from __future__ import annotations

from pathlib import Path

from .analyze import analyze, load_run, pick_classes, write_json
from .plots import ablation_figure, features_figure, memory_figure, separation_figure, weights_figure


def _slug(block: str) -> str:
    return block.removesuffix(".sr").replace(".", "_")


def run_analysis(folder: str | Path, classes: list[str] | None = None, per_class: int = 50,
                 split: str = "val", data_root: str | Path | None = None) -> dict[str, Path]:
    """Writes RUN_DIR/analysis/: weights.json, features.json, memory.json, ablation.json and figures."""
    run = load_run(folder, data_root)
    picked = pick_classes(run.splits["test"].classes, classes)
    result = analyze(run, picked, per_class=per_class, split=split)
    out = Path(folder) / "analysis"
    out.mkdir(exist_ok=True)
    blocks = result["blocks"]
    keep = lambda keys: {n: {k: b[k] for k in keys if k in b} | {"per_class": {c: {k: s[k] for k in keys if k in s} for c, s in b["per_class"].items()}} for n, b in blocks.items()}  # noqa: E731
    header = {"split": split, "per_class": per_class, "classes": result["classes"]}
    files = {
        "weights.json": {**header, "blocks": keep(["memory_blocks", "images", "weight_mean", "weight_std", "weight_entropy", "max_entropy",
                                                    "unused_blocks", "nearest_centroid_acc", "chance_acc", "weight_sums"])},
        "features.json": {**header, "blocks": keep(["channels", "images", "pre_mean", "post_mean", "delta_mean"])},
        "memory.json": {n: {k: b[k] for k in ("channels", "size", "memory_blocks", "memory_channel_means", "memory_spatial_means")} for n, b in blocks.items()},
        "ablation.json": result["ablation"],
    }
    paths = {}
    for name, data in files.items():
        write_json(out / name, data)
        paths[name] = out / name
    for block, data in blocks.items():
        for kind, draw in (("weights", weights_figure), ("features", features_figure), ("memory", memory_figure), ("separation", separation_figure)):
            path = out / f"{kind}_{_slug(block)}.png"
            paths[path.name] = draw(block, data, path)
    paths["ablation.png"] = ablation_figure(result["ablation"], out / "ablation.png")
    return paths


__all__ = ["analyze", "load_run", "pick_classes", "run_analysis"]
