"""The memory study's figure and table (docs/memory.md) from a finished `fashion_mnist-memory` sweep.

    srblock sweep fashion_mnist-memory --out runs          # 8 rows x 3 seeds, resumable
    python benchmarks/memory_study.py runs/fashion_mnist-memory --figure docs/figures/memory_study.png

Prints one Markdown row per configuration: test accuracy (mean ± std over seeds), the paired
difference to plain (95% interval), the accuracy lost when the SR block is bypassed (mean ± std of
the per-seed loss), and the memory's statistics after the last epoch; draws their accuracies and
the statistics per epoch (mean over seeds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from srblock.render import render  # noqa: E402
from srblock.results import collect_results, summarize  # noqa: E402
from srblock.run_folder import RunFolder  # noqa: E402


def _pm(values: list[float], fmt: str = ".2f") -> str:
    if not values:
        return ""
    spread = f" ± {statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):{fmt}}{spread}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="the sweep's folder: OUT/fashion_mnist-memory")
    p.add_argument("--figure", help="where to draw the figure (PNG)")
    args = p.parse_args()
    results = collect_results(Path(args.folder))
    summary = {row["folder"]: row for row in summarize(results)}
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(str(Path(result["folder"]).parent), []).append(result)
    rows, curves = [], {}
    for folder, runs in sorted(groups.items(), key=lambda item: item[1][0].get("row", 0)):
        name = runs[0].get("name") or Path(folder).name
        lost = [
            r["test_acc"] - r["test_acc_bypassed"] for r in runs if r.get("test_acc_bypassed") is not None
        ]
        rows.append(
            {
                "configuration": name,
                "seeds": len(runs),
                "test acc. (%)": _pm([r["test_acc"] for r in runs]),
                "SR - plain, 95% CI": summary[folder].get("vs_plain", ""),
                "lost when bypassed": _pm(lost),
                "memory / input RMS": _pm([r["sr_mem_ratio"] for r in runs if "sr_mem_ratio" in r], ".2g"),
                "weight entropy": _pm(
                    [r["sr_weight_entropy"] for r in runs if "sr_weight_entropy" in r], ".3f"
                ),
                "class sep. (%)": _pm(
                    [r["sr_weight_class_sep"] for r in runs if "sr_weight_class_sep" in r], ".1f"
                ),
                "SR params (%)": f"{runs[0].get('sr_oh_pct', 0):.2f}" if runs[0].get("sr_params") else "",
            }
        )
        metrics = [RunFolder(Path(r["folder"])).metrics() for r in runs]
        if all("sr_mem_ratio" in m[0] for m in metrics):
            curves[name] = {
                key: [statistics.fmean(m[e][key] for m in metrics) for e in range(len(metrics[0]))]
                for key in ("sr_mem_ratio", "sr_weight_entropy", "sr_weight_class_sep")
            }
    print(render(rows, list(rows[0])))
    if args.figure:
        draw(rows, curves, Path(args.figure))
    return 0


def draw(rows: list[dict], curves: dict[str, dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    names = [r["configuration"] for r in rows]
    means = [float(r["test acc. (%)"].split(" ")[0]) for r in rows]
    stds = [float(r["test acc. (%)"].split(" ± ")[1]) if "±" in r["test acc. (%)"] else 0 for r in rows]
    axes[0].barh(range(len(names)), means, xerr=stds, color=["grey"] + ["C0"] * (len(names) - 1))
    axes[0].set_yticks(range(len(names)), names, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlim(min(means) - 1.5, max(means) + 1)
    axes[0].set_xlabel("test accuracy (%), mean ± std")
    for ax, (key, label, scale) in zip(
        axes[1:],
        (
            ("sr_mem_ratio", "memory RMS / input RMS", "log"),
            ("sr_weight_entropy", "weight entropy / log P", "linear"),
            ("sr_weight_class_sep", "classes told apart by weights (%)", "linear"),
        ),
    ):
        for name, values in curves.items():
            if key in values:
                ax.plot(range(1, len(values[key]) + 1), values[key], marker=".", label=name)
        ax.set(xlabel="epoch", ylabel=label, yscale=scale)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    sys.exit(main())
