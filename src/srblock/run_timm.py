"""Runs one of timm's scripts (train.py, validate.py, inference.py...) with srblock's zoo in timm's
registry: `python -m srblock.run_timm train.py DATA --model srblock_resnet18_cifar --model-kwargs
sr_stage=3`. timm's scripts do not import srblock; this module does, once (the zoo registers as
`srblock_<name>`: timm_models.py), then runs the script as `python SCRIPT ARGS` would. It is a
module of its own, which `import srblock` does not load, so that `python -m` runs it once."""

from __future__ import annotations

import runpy
import sys

USAGE = "usage: python -m srblock.run_timm SCRIPT.py [ARGS...] (a timm script, e.g. train.py)"


def main(argv: list[str]) -> None:
    """Runs the timm script `argv[0]` with the arguments after it, srblock's zoo registered."""
    if not argv or not argv[0].endswith(".py"):
        raise SystemExit(USAGE)
    import srblock  # noqa: F401  (registers the zoo with timm)

    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
