"""Training progress: a tqdm bar on a terminal, plain lines where output goes to a file (Snakemake logs, SLURM)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TextIO

from tqdm import tqdm

#: Seconds between two plain progress lines (the first and the last iteration of a stage are always printed).
EVERY_S = 30.0


def progress_mode(progress: bool | None, stream: TextIO) -> str:
    """``"bar"``, ``"lines"`` or ``"off"``: ``progress=None`` picks the bar on a terminal and lines elsewhere,
    ``True`` the bar, ``False`` nothing."""
    if progress is None:
        return "bar" if stream.isatty() else "lines"
    return "bar" if progress else "off"


class StageProgress:
    """Progress of one training stage of ``total`` iterations, resumed after ``start``.

    Plain lines read
    ``<method> <stage>: 120/6000 (2.0%), 3.41 it/s, ETA 0:28:45, loss 0.5120, ce 0.3100, val_dice 52.10``: the rate
    over the iterations since the previous line, the time left at the rate since this process started the stage, and
    the mean of every logged term since the previous line.
    """

    def __init__(self, name: str, total: int, start: int, mode: str, stream: TextIO | None = None,
                 every_s: float = EVERY_S) -> None:
        self.name, self.total, self.mode, self.every_s = name, total, mode, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.bar = tqdm(total=total, initial=start, desc=name, unit="it", disable=mode != "bar", file=self.stream)
        self.first, self.last_done = start, start
        self.began = self.last_time = time.perf_counter()
        self.sums: dict[str, float] = {}
        self.count = 0
        self.notes: dict[str, str] = {}

    def update(self, done: int, terms: Mapping[str, float]) -> None:
        """Iteration ``done`` (1-based) finished with the logged ``terms``."""
        self.bar.update(1)
        if self.mode != "lines":
            return
        for key, value in terms.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        now = time.perf_counter()
        if done == self.first + 1 or done == self.total or now - self.last_time >= self.every_s:
            self._line(done, now)

    def note(self, **values: float) -> None:
        """Values shown from now on (the latest validation Dice and the best so far)."""
        self.notes = {key: f"{value:.2f}" for key, value in values.items()}
        self.bar.set_postfix(self.notes)

    def close(self) -> None:
        self.bar.close()

    def _line(self, done: int, now: float) -> None:
        rate = (done - self.last_done) / max(now - self.last_time, 1e-9)
        overall = (done - self.first) / max(now - self.began, 1e-9)
        eta = timedelta(seconds=round((self.total - done) / overall))
        terms = [f"{key} {total / self.count:.4f}" for key, total in self.sums.items()]
        notes = [f"{key} {value}" for key, value in self.notes.items()]
        fields = [f"{done}/{self.total} ({100 * done / self.total:.1f}%)", f"{rate:.2f} it/s", f"ETA {eta}",
                  *terms, *notes]
        print(f"{self.name}: {', '.join(fields)}", file=self.stream, flush=True)
        self.last_done, self.last_time, self.sums, self.count = done, now, {}, 0
