"""Atomic file writes: a crash or kill never leaves a half-written file behind (nor half of a set of files)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import yaml

from .errors import StorageError

if TYPE_CHECKING:
    import pandas as pd

#: Suffix of the hidden temporary files of :func:`atomic_path` (``.<name>.<random>.tmp``).
TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any error the temporary file is removed and ``path`` keeps its previous content; an ``OSError`` (a full
    disk, a quota, permissions) becomes a :class:`StorageError` naming ``path``. A process killed mid-write
    leaves at most a hidden ``.<name>.*.tmp`` beside ``path``, which no reader opens
    (:func:`remove_temp_files` deletes it).
    """
    path = Path(path)
    tmp: str | None = None
    try:
        with _storage_errors(path):
            tmp = _temp_beside(path)
            yield Path(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_files(writes: Mapping[Path, Callable[[BinaryIO], None]]) -> None:
    """Write files that belong together (a figure's PNG, PDF and CSV): each ``write`` fills a binary file object.

    Every file is written to its temporary file and synced before the first one replaces its target, so an error
    or a kill while writing leaves all the previous versions (errors as in :func:`atomic_path`).
    """
    temps: dict[Path, str] = {}
    try:
        for path, write in writes.items():
            with _storage_errors(path):
                temps[path] = _temp_beside(path)
                with open(temps[path], "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
        for path, tmp in temps.items():
            with _storage_errors(path):
                os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def _temp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return temp_file(path)


def temp_file(path: Path) -> str:
    """A new hidden ``.<name>.<random>.tmp`` beside ``path`` with the mode ``path`` will have: that of the file it
    replaces, else ``0o666`` less the umask (``0644`` under umask 022), as for a file opened for writing, not
    ``mkstemp``'s ``0600``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~umask()
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return tmp


def temp_dir(path: Path) -> Path:
    """A new hidden ``.<name>.<random>.tmp`` folder beside ``path`` with the mode of a new folder (``0o777`` less the
    umask, ``0755`` under umask 022), not ``mkdtemp``'s ``0700``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent))
    tmp.chmod(0o777 & ~umask())
    return tmp


def umask() -> int:
    """The process's file-mode creation mask, read from ``/proc`` where possible (setting it to read it back is not
    thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def _storage_errors(path: Path) -> Iterator[None]:
    """An ``OSError`` while writing ``path`` becomes a :class:`StorageError` naming it."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        error = StorageError(f"could not write {path}: {exc.strerror or exc}; its previous content (if any) is kept")
        error.errno = exc.errno
        raise error from exc


def remove_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder``; return them."""
    stale = sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a binary file object that becomes ``path`` only when it returns."""
    write_files({Path(path): write})


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False))
