"""On-disk dataset layouts: where each case's HDF5 file and the split lists live under a root.

Layouts are declared by the dataset YAMLs (:mod:`benchmarks.config.dataset`). A list file holds one case ID per
line; order is significant, surrounding whitespace and blank lines are ignored. A layout's training list may
be the concatenation of several files (CoraNet: ``train_lab.txt`` then ``train_unlab.txt``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.errors import ConfigError, DataError
from benchmarks.io import temp_file

Spacing = tuple[float, float, float]


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Case IDs of one list file, in file order; rejects a missing/empty file and duplicates."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: list file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read list file ({exc})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: list file contains no case IDs")
    check_unique(ids, str(path))
    return ids


def check_unique(ids: Sequence[str], source: str) -> None:
    """Raise DataError naming ``source`` and the first duplicated ID (with its line numbers)."""
    first: dict[str, int] = {}
    for position, case_id in enumerate(ids, start=1):
        if case_id in first:
            raise DataError(f"{source}: duplicate case ID {case_id!r} (entries {first[case_id]} and {position})")
        first[case_id] = position


def write_id_list(path: str | os.PathLike[str], ids: Iterable[str]) -> Path:
    """Write one ID per line (newline-terminated) atomically; returns the path."""
    path = Path(path)
    ids = list(ids)
    check_unique(ids, str(path))
    tmp = temp_file(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(f"{case_id}\n" for case_id in ids)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Layout:
    """How one dataset layout maps a root directory and case IDs to files.

    ``case_pattern`` is relative to the root with ``{id}`` replaced by the case ID;
    ``train_lists``/``test_lists`` are list files relative to the root, concatenated in order;
    ``spacing`` is the default voxel size in mm along (X, Y, Z), overridden per case by an HDF5
    file attribute ``spacing``.
    """

    name: str
    case_pattern: str
    train_lists: tuple[str, ...]
    test_lists: tuple[str, ...]
    spacing: Spacing
    manifest: str | None = None

    def case_path(self, root: str | os.PathLike[str], case_id: str) -> Path:
        """Path of the HDF5 file of ``case_id``."""
        return Path(root) / self.case_pattern.format(id=case_id)

    def train_ids(self, root: str | os.PathLike[str]) -> list[str]:
        """Training IDs (labeled candidates first, in list order)."""
        return self._read(root, self.train_lists)

    def test_ids(self, root: str | os.PathLike[str]) -> list[str]:
        """Test IDs in list order."""
        return self._read(root, self.test_lists)

    def read_lists(self, root: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
        """(training IDs, test IDs); raises DataError if an ID is in both."""
        train, test = self.train_ids(root), self.test_ids(root)
        both = set(train) & set(test)
        if both:
            first = next(case_id for case_id in test if case_id in both)
            raise DataError(
                f"case {first!r} is in both the training lists {self._names(root, self.train_lists)} "
                f"and the test lists {self._names(root, self.test_lists)} ({len(both)} shared IDs)"
            )
        return train, test

    def manifest_path(self, root: str | os.PathLike[str]) -> Path | None:
        """Path of the optional manifest file, or None if the layout has none."""
        return None if self.manifest is None else Path(root) / self.manifest

    def _read(self, root: str | os.PathLike[str], lists: tuple[str, ...]) -> list[str]:
        ids = [case_id for name in lists for case_id in read_id_list(Path(root) / name)]
        if len(lists) > 1:
            check_unique(ids, f"concatenation of {self._names(root, lists)}")
        return ids

    @staticmethod
    def _names(root: str | os.PathLike[str], lists: tuple[str, ...]) -> str:
        return " + ".join(str(Path(root) / name) for name in lists)


def builtin_layouts() -> dict[str, Layout]:
    """Every layout declared by the built-in dataset YAMLs, by name."""
    from benchmarks.config.dataset import layouts  # the dataset files hold the layouts; that module imports this one

    return layouts()


def get_layout(name: str) -> Layout:
    """The layout called ``name``, declared by the built-in dataset YAMLs; ConfigError listing the known
    names otherwise."""
    known = builtin_layouts()
    try:
        return known[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown data layout {name!r}; known layouts: {', '.join(sorted(known))}") from None
