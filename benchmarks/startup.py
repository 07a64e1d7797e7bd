"""How fast the command line answers, beside `import torch` on the same machine: `srblock --help`,
`srblock train --help`, `import srblock`, importing the stack the loops stand on (timm,
torchvision, Lightning Fabric) after torch, and a tiny Fashion-MNIST run's seconds to its first
training step with the `--verbose` breakdown (each in fresh processes; medians of --repeats).

    python benchmarks/startup.py [--repeats 5] [--out DIR]

Prints a Markdown table; the tiny run needs Fashion-MNIST (apt-get install dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "import srblock": [sys.executable, "-c", "import srblock"],
    "srblock --help": [sys.executable, "-m", "srblock", "--help"],
    "srblock train --help": [sys.executable, "-m", "srblock", "train", "--help"],
}
# what the loops stand on, imported after torch: the floor under "first step after torch is imported"
STACK = "timm, torchvision, lightning.fabric"
STACK_SECONDS = (
    "import time, torch; started = time.perf_counter(); import timm, torchvision, lightning.fabric; "
    "print(time.perf_counter() - started)"
)
TINY_RUN = "train fashion_mnist --seeds 0 --set epochs=1 --set limit_train=256 --set limit_test=128 --verbose"
PHASE = re.compile(r"(.+?) ([0-9.]+) s(?:, |$)")


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def stack_seconds() -> float:
    """Seconds to import the stack after torch, in a fresh process (printed by that process)."""
    done = subprocess.run([sys.executable, "-c", STACK_SECONDS], check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def tiny_run(out: Path) -> dict[str, float]:
    """The `--verbose` start-up line of a tiny run, as phase -> seconds (and 'first step')."""
    done = subprocess.run(
        [sys.executable, "-m", "srblock", *TINY_RUN.split(), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return phases(next(s for s in (done.stdout + done.stderr).splitlines() if s.startswith("start-up:")))


def phases(line: str) -> dict[str, float]:
    """srblock's start-up line ("start-up: imports 0.1 s, config, torch 1.3 s, ...; first step done
    at 6.0 s") as phase -> seconds, the first step's time last."""
    body, _, last = line.removeprefix("start-up:").partition(";")
    found = {name: float(value) for name, value in PHASE.findall(body.strip())}
    return {**found, "first step": float(last.rsplit("at ", 1)[1].split()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=None, help="where the tiny runs go (default: a temporary folder)"
    )
    args = parser.parse_args()
    rows = []
    for name, command in COMMANDS.items():
        times = [seconds(command) for _ in range(args.repeats)]
        rows.append((f"`{name}`", statistics.median(times), min(times), max(times)))
    stack = [stack_seconds() for _ in range(args.repeats)]
    rows.append((f"`import {STACK}`, after torch", statistics.median(stack), min(stack), max(stack)))
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        runs = [tiny_run(out / f"run{k}") for k in range(args.repeats)]
    print("| command | median (s) | min | max |\n| --- | ---: | ---: | ---: |")
    for name, median, low, high in rows:
        print(f"| {name} | {median:.2f} | {low:.2f} | {high:.2f} |")
    print(f"\n`srblock {TINY_RUN}`, medians of {args.repeats} runs, seconds per phase:\n")
    print("| phase | median (s) |\n| --- | ---: |")
    for phase in runs[0]:
        print(f"| {phase} | {statistics.median(r[phase] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
