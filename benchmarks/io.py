"""Atomic file writes: a crash or kill never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import yaml

from .errors import StorageError

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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except StorageError:
        raise
    except OSError as exc:
        error = StorageError(f"could not write {path}: {exc.strerror or exc}; its previous content (if any) is kept")
        error.errno = exc.errno
        raise error from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def remove_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder``; return them."""
    stale = sorted(p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a binary file object that becomes ``path`` only when it returns."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml(path: str | os.PathLike[str], data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False))
