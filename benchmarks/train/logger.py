"""Per-iteration CSV log that pandas reads, consistent with the last checkpoint after a resume."""

from __future__ import annotations

import csv
from io import StringIO
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..io import write_text


class CsvLog:
    """Appends one row per call; new columns (a later stage's loss terms) extend the header.

    ``keep`` decides, when the file already exists (a resumed run), which of its rows survive: rows
    logged after the checkpoint being resumed from are dropped so every row appears exactly once.
    """

    def __init__(self, path: Path, keep: Callable[[Mapping[str, str]], bool] | None = None) -> None:
        self.path = path
        self.columns: list[str] = []
        rows: list[dict[str, Any]] = []
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                rows = [row for row in reader if keep is None or keep(row)]
        self._rewrite(rows)

    def write(self, row: Mapping[str, Any]) -> None:
        new = [key for key in row if key not in self.columns]
        if new:
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns += new
            self._rewrite(rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, restval="").writerow(dict(row))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        buffer = StringIO()
        if self.columns:
            writer = csv.DictWriter(buffer, self.columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        write_text(self.path, buffer.getvalue())
