"""Whole-run times for gpu_check.py: where the seconds before the first training step go
(`srblock train --verbose`, inductor's caches cold and then warm), and a real run of the CIFAR-100
recipe end to end (launch to result.json), one seed alone and N seeds stacked.

Each section takes `run(args, timeout, env)` (a `python -m srblock` in a fresh process) so that
gpu_check.py owns the budget and the scratch space.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIRST_STEP = re.compile(r"first step done at ([0-9.]+) s")


def startup_rows(
    run: Callable[..., Any], data: Path, scratch: Path, *, model: str, compile_mode: str | None
) -> list[dict[str, Any]]:
    """One short run with inductor's caches cold, then (compiled) the same with them warm: the
    `--verbose` breakdown and the seconds from launch to the first training step of each."""
    cache = scratch / "inductor-cache"  # empty at first: the first run fills it
    rows = []
    for caches in ("cold", "warm") if compile_mode else ("eager",):
        line = f"train cifar100 --verbose --quiet --set model={model} --set sr_stage=3 --set epochs=1"
        line += " --set val_fraction=0 --set limit_test=512 --set num_workers=0"
        line += f" --set compile={str(compile_mode is not None).lower()}"
        line += f" --set compile_mode={compile_mode or 'default'}"
        out = scratch / f"startup-{caches}"
        started = time.time()
        done = run(
            line.split() + ["--data", str(data), "--out", str(out)],
            300,
            {"TORCHINDUCTOR_CACHE_DIR": str(cache)},
        )
        report = next((s for s in done.stderr.splitlines() if s.startswith("start-up:")), "")
        found = FIRST_STEP.search(report)
        rows.append(
            {
                "caches": caches,
                "compile": compile_mode or "no",
                "first_step_s": float(found.group(1)) if found else None,
                "wall_s": time.time() - started,
                "breakdown": report.removeprefix("start-up: "),
            }
        )
    return rows


def end_to_end_rows(
    run: Callable[..., Any],
    data: Path,
    scratch: Path,
    *,
    model: str,
    epochs: int,
    stack: int,
    timeout: float,
    alone: bool = True,
) -> list[dict[str, Any]]:
    """The recipe's defaults (compile: auto) for `epochs` epochs, launch to result.json: one seed
    (unless not `alone`), then `stack` seeds as one stacked network."""
    rows = []
    for seeds, flags in ((1, []), (stack, ["--stack", str(stack)]))[0 if alone else 1 :]:
        line = f"train cifar100 --quiet --set model={model} --set sr_stage=3 --set epochs={epochs}"
        line += " --set num_workers=0 --seeds " + " ".join(map(str, range(seeds)))
        out = scratch / f"end-to-end-{seeds}"
        started = time.time()
        row: dict[str, Any] = {
            "seeds": seeds,
            "as": "alone" if seeds == 1 else "one stacked network",
            "epochs": epochs,
        }
        rows.append(row)
        try:
            run(line.split() + flags + ["--data", str(data), "--out", str(out)], timeout, {})
        except Exception as err:  # noqa: BLE001 (a timeout or a failed run is the row's result)
            row["error"] = str(err)[-400:]
            continue
        results = [json.loads(p.read_text()) for p in out.rglob("result.json")]
        row.update(
            wall_min=(time.time() - started) / 60,
            test_acc=sum(r["test_acc"] for r in results) / len(results),
            compiled=results[0].get("compiled"),
        )
    return rows
