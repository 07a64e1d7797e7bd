"""A run's progress as a person follows it: on a terminal a live bar within the epoch and one line
kept per finished epoch (its seconds, the time left); where the output is a file, those lines
alone, no carriage returns."""

import io
import re
import sys
from types import SimpleNamespace

import pytest

from srblock.train.progress import Progress, clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_one_line_kept_per_epoch_with_its_seconds_and_the_time_left(monkeypatch, terminal):
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    progress = Progress(SimpleNamespace(global_rank=0), 6, 0, "step", "runs/cfg/seed0", False, period=3)
    for epoch in (1, 2):
        progress.describe(f"epoch {epoch}/2")
        for _ in range(3):
            progress.update(loss="1.000")
        progress.report(f"epoch {epoch}/2", loss="0.9", val="50.0%")
    live = progress.live
    progress.close()
    text = err.getvalue()
    lines = [
        line.split("\r")[-1] for line in text.splitlines() if "runs/cfg/seed0 epoch" in line and ": " in line
    ]
    kept = [line for line in lines if line.endswith(")")]
    assert re.fullmatch(r"runs/cfg/seed0 epoch 1/2: loss 0\.9 val 50\.0% \(\d+ s, \d+ s left\)", kept[0])
    assert re.fullmatch(r"runs/cfg/seed0 epoch 2/2: loss 0\.9 val 50\.0% \(\d+ s\)", kept[1])  # none left
    assert len(kept) == 2 and live == terminal
    assert ("\r" in text) == terminal  # a bar's frames on a terminal only


def test_a_quiet_run_or_another_process_shows_nothing(monkeypatch):
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    for rank, quiet in ((0, True), (1, False)):
        progress = Progress(SimpleNamespace(global_rank=rank), 4, 0, "step", "x", quiet, period=2)
        progress.update()
        progress.report("epoch 1/2", loss="1")
        progress.close()
    assert err.getvalue() == ""


def test_a_wait_reads_as_a_person_says_it():
    assert [clock(s) for s in (0, 42.4, 185, 7620, -3)] == ["0 s", "42 s", "3 min 05 s", "2 h 07 min", "0 s"]


def test_a_wait_on_the_command_line_gets_a_bar_on_a_terminal_only(monkeypatch):
    """analyze, report, predict and export show a bar for work past `delay` seconds (2 by default),
    on a terminal; a log file gets none."""
    from srblock.busy import working

    for terminal in (True, False):
        err = Terminal() if terminal else io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        assert list(working(range(3), "predicting (batches)", delay=0)) == [0, 1, 2]
        assert ("predicting (batches)" in err.getvalue() and "/3 " in err.getvalue()) == terminal
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert list(working(iter("ab"), "quick")) == ["a", "b"] and err.getvalue() == ""  # under 2 s: none
