"""A tiny sweep of 6 runs (2 rows x 3 seeds, resnet10s_cifar on synthetic CIFAR-10) trained four
ways on this machine: one worker; two workers (two `srblock sweep` processes on one --out), with
torch's threads as they are and with one each; and one command with --parallel 2. Prints each
way's wall time and checks that every run finished once: a result.json per run, and each epoch
once in its metrics.csv.

    python benchmarks/workers.py [--epochs 3] [--train-images 2000]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.helpers import write_cifar10  # noqa: E402  (CIFAR-10's layout, synthetic images)

SWEEP = """recipe: cifar10
seeds: [0, 1, 2]
set: {{model: resnet10s_cifar, epochs: {epochs}, batch_size: 32, eval_batch_size: 64}}
runs:
  - {{name: plain}}
  - {{name: SR, sr_stage: 3, sr_memory_blocks: 2}}
"""


def check(out: Path, epochs: int) -> str:
    """'6 runs, each once' or what is wrong."""
    folders = sorted(out.glob("mini/*/seed*"))
    bad = []
    for folder in folders:
        with (folder / "metrics.csv").open() as f:
            logged = [row["epoch"] for row in csv.DictReader(f)]
        if not (folder / "result.json").is_file() or logged != [str(e) for e in range(1, epochs + 1)]:
            bad.append(folder.name)
    return f"{len(folders)} runs, each once" if not bad and len(folders) == 6 else f"wrong: {bad}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-images", type=int, default=2000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = write_cifar10(scratch / "data", per_batch=args.train_images // 5, test=80)
        sweep = scratch / "mini.yaml"
        sweep.write_text(SWEEP.format(epochs=args.epochs))
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        command = [sys.executable, "-m", "srblock", "sweep", str(sweep), "--data", str(data), "--quiet"]
        ways = (  # (name, workers, flags, threads per worker: None leaves torch's default, the cores)
            ("1 worker", 1, [], None),
            ("2 workers", 2, [], None),
            ("2 workers, OMP_NUM_THREADS=1", 2, [], "1"),
            ("--parallel 2", 1, ["--parallel", "2"], None),
        )
        for name, workers, extra, threads in ways:
            out = scratch / "out"
            started = time.time()
            own = {**env, "OMP_NUM_THREADS": threads} if threads else env
            processes = [
                subprocess.Popen([*command, "--out", str(out), *extra], env=own, stdout=subprocess.DEVNULL)
                for _ in range(workers)
            ]
            codes = [process.wait() for process in processes]
            seconds = time.time() - started
            print(f"| {name} | {seconds:.0f} | {check(out, args.epochs)} | exit {codes} |", flush=True)
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
