"""A run's progress on the console: a tqdm bar on a terminal, one line per report elsewhere."""

from __future__ import annotations

import sys

from lightning.fabric import Fabric
from tqdm.auto import tqdm

from .. import startup


class Progress:
    """A tqdm bar on a terminal; where the output goes to a file, one line per `report` instead
    (a bar's every frame would fill the file with carriage returns)."""

    def __init__(self, fabric: Fabric, total: int, done: int, unit: str, label: str, quiet: bool) -> None:
        shown = not quiet and fabric.global_rank == 0
        self.fabric, self.first = fabric, True
        self.lines = shown and not sys.stderr.isatty()
        self.label = label
        self.bar = tqdm(
            total=total,
            initial=done,
            disable=not shown or self.lines,
            unit=unit,
            dynamic_ncols=True,
            leave=False,
            desc=label,
        )

    @property
    def live(self) -> bool:
        """Whether a bar is drawn, so values shown on it are worth computing."""
        return not self.bar.disable

    def describe(self, where: str) -> None:
        """What the bar shows beside the run's name (e.g. the epoch)."""
        self.bar.set_description(f"{self.label} {where}", refresh=False)

    def update(self, **values: str) -> None:
        if self.first and startup.verbose:  # where the time went before this first step
            self.fabric.print(startup.report("first step done"), file=sys.stderr)
        self.first = False
        self.bar.update(1)
        if values:
            self.bar.set_postfix(values, refresh=False)

    def report(self, where: str, **values: str) -> None:
        """The outcome of an epoch or evaluation: on the bar, or as one printed line."""
        if self.lines:
            print(
                f"{self.label} {where}: " + " ".join(f"{k} {v}" for k, v in values.items()),
                file=sys.stderr,
                flush=True,
            )
        self.bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        self.bar.close()
