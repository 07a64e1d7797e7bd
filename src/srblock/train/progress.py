"""A run's progress on the console: on a terminal, a live tqdm bar within the epoch (or evaluation
window) and one line kept per finished epoch; where the output goes to a file, that line alone."""

from __future__ import annotations

import sys
import time

from lightning.fabric import Fabric
from tqdm.auto import tqdm

from .. import startup


def clock(seconds: float) -> str:
    """Seconds as a person reads a wait: 42 s, 3 min 05 s, 2 h 07 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """`total` steps, `done` already (a resumed run); the bar spans `period` steps (an epoch, an
    evaluation window) and starts again after each `report`, whose line says the period's seconds
    and the time left at this process's pace. A file gets the lines only (a bar's every frame would
    fill it with carriage returns)."""

    def __init__(
        self,
        fabric: Fabric,
        total: int,
        done: int,
        unit: str,
        label: str,
        quiet: bool,
        period: int | None = None,
    ) -> None:
        shown = not quiet and fabric.global_rank == 0
        self.fabric, self.first = fabric, True
        self.lines = shown and not sys.stderr.isatty()
        self.label, self.total, self.done, self.period = label, total, done, max(period or total, 1)
        self.started = self.since = time.perf_counter()
        self.done_before = done
        self.bar = tqdm(
            total=self.period,
            initial=done % self.period,
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
        self.done += 1
        self.bar.update(1)
        if values:
            self.bar.set_postfix(values, refresh=False)

    def note(self, where: str, **values: str) -> None:
        """A line kept above the bar (or printed): one seed's epoch in a stack, a stopped run."""
        self._write(self._line(where, values))

    def report(self, where: str, **values: str) -> None:
        """The outcome of an epoch or evaluation, as one line kept above the bar (or printed), with
        its seconds and the time left; the bar starts the next period."""
        now = time.perf_counter()
        pace = (now - self.started) / max(self.done - self.done_before, 1)
        left = f", {clock(pace * (self.total - self.done))} left" if self.done < self.total else ""
        self._write(f"{self._line(where, values).rstrip()} ({clock(now - self.since)}{left})")
        self.since = now
        if self.live:
            self.bar.reset(total=self.period)

    def _line(self, where: str, values: dict[str, str]) -> str:
        return f"{self.label} {where}: " + " ".join(f"{k} {v}" for k, v in values.items())

    def _write(self, line: str) -> None:
        if self.lines:
            print(line, file=sys.stderr, flush=True)
        elif self.live:
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
