"""Per-iteration CSV log that pandas reads, consistent with the last checkpoint after a resume."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from io import StringIO
from pathlib import Path
from typing import Any

from ..errors import StorageError
from ..io import write_text


class CsvLog:
    """Appends one row per call; new columns (a later stage's loss terms) extend the header.

    ``keep`` decides, when the file already exists (a resumed run), which of its rows survive: rows
    logged after the checkpoint being resumed from are dropped so every row appears exactly once, and so is
    a malformed row (a line cut short by a full disk) or one ``keep`` cannot read.
    """

    def __init__(self, path: Path, keep: Callable[[Mapping[str, str]], bool] | None = None) -> None:
        self.path = path
        self.columns: list[str] = []
        rows: list[dict[str, Any]] = []
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                rows = [row for row in reader if _kept(row, keep)]
        self._rewrite(rows)

    def write(self, row: Mapping[str, Any]) -> None:
        new = [key for key in row if key not in self.columns]
        if new:
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns += new
            self._rewrite(rows)
        try:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, self.columns, restval="").writerow(dict(row))
        except OSError as exc:
            raise StorageError(f"could not append to {self.path}: {exc.strerror or exc}") from exc

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        buffer = StringIO()
        if self.columns:
            writer = csv.DictWriter(buffer, self.columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        write_text(self.path, buffer.getvalue())


def _kept(row: Mapping[str, str | None], keep: Callable[[Mapping[str, str]], bool] | None) -> bool:
    if None in row or None in row.values():  # too many or too few fields
        return False
    try:
        return keep is None or keep(row)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return False
