"""Checkpoints: written atomically, validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError, StorageError
from ..io import write_atomic

FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path``; a crash, full disk or file-size limit leaves the previous file intact."""
    try:
        write_atomic(path, lambda f: _save({"format": FORMAT, **state}, f))
    except StorageError as exc:
        reason = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        raise CheckpointError(f"could not write checkpoint {path}: {reason.strerror or reason}; "
                              "the previous checkpoint is kept") from exc


class _KeptErrors:
    """A binary file that remembers the first ``OSError`` of its writes."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def _save(state: dict[str, Any], handle: BinaryIO) -> None:
    """``torch.save`` to ``handle``; a failed write (ENOSPC, EFBIG) is raised as that ``OSError``, not as the
    ``RuntimeError`` ("unexpected pos") into which torch's C++ writer turns it."""
    sink = _KeptErrors(handle)
    try:
        torch.save(state, sink)  # type: ignore[arg-type]
    except RuntimeError:
        if sink.error is not None:
            raise sink.error from None
        raise


def load_checkpoint(path: Path, method: str | None = None, arch: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint and check that it belongs to ``method`` with architecture ``arch``."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an sslbench checkpoint (format {FORMAT})")
    if method is not None and state.get("method") != method:
        raise CheckpointError(f"checkpoint {path} belongs to method {state.get('method')!r}, not {method!r}")
    if arch is not None and state.get("arch") != arch:
        raise CheckpointError(f"checkpoint {path} has architecture {state.get('arch')}, expected {arch}")
    return state
