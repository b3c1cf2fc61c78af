"""The manifest of a prepared dataset (``<out>/manifest.json``): how every case was made, from which bytes.

Top level: ``recipe``, ``split`` (protocol name), ``layout``, ``raw``, ``options`` (every option),
``options_digest`` (hash of the options that change cases), ``code`` (git commit, dirty flag), ``packages``,
``complete`` (false while a run is under way), ``lists`` (file -> IDs) and ``cases``: ID -> ``output``
(path relative to the root), ``sources`` (``image``/``label``: path, bytes, mtime_ns, sha256; a DICOM series
also has ``files``, its sha256 hashes the per-file digests in stacking-independent path order), ``shape``
(X, Y, Z), ``spacing`` (mm), ``crop`` (box in the resampled volume), ``intensity`` (``source`` statistics of
the raw image, ``output`` statistics of the stored image), ``foreground_voxels``, ``options_digest`` and the
recipe's extra facts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from benchmarks.errors import DataError
from benchmarks.io import write_json
from benchmarks.prepare.readers import dicom_files, sha256_file

NAME = "manifest.json"


def _stat(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def source_record(path: Path, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Path, size, modification time and sha256 of a source file or DICOM folder.

    The sha256 of ``previous`` is reused when size and modification time (and the file count of a folder)
    are unchanged, so resuming does not re-read every raw byte.
    """
    if path.is_dir():
        files = dicom_files(path)
        stats = [_stat(p) for p in files]
        record: dict[str, Any] = {"path": str(path), "files": len(files), "bytes": sum(s[0] for s in stats),
                                  "mtime_ns": max((s[1] for s in stats), default=0)}
    else:
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        size, mtime = _stat(path)
        record = {"path": str(path), "bytes": size, "mtime_ns": mtime}
    if previous and all(previous.get(k) == v for k, v in record.items()):
        return {**record, "sha256": previous["sha256"]}
    if path.is_dir():
        digest = hashlib.sha256()
        for file in files:
            digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
        record["sha256"] = digest.hexdigest()
    else:
        record["sha256"] = sha256_file(path)
    return record


def digest(data: Any) -> str:
    """Short stable hash of a JSON-serialisable value."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load(root: Path) -> dict[str, Any] | None:
    """The manifest under ``root`` or None; DataError naming it if it is not a JSON object."""
    path = root / NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); delete it to prepare the dataset again") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        raise DataError(f"{path}: not a manifest written by `sslbench prepare`")
    return data


def save(root: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically."""
    write_json(root / NAME, manifest)


def is_current(entry: dict[str, Any] | None, options_digest: str, sources: dict[str, dict[str, Any]],
               root: Path) -> bool:
    """Whether a finished case can be kept: same options, same source checksums, output file present."""
    return bool(
        entry
        and entry.get("options_digest") == options_digest
        and {k: v.get("sha256") for k, v in entry.get("sources", {}).items()}
        == {k: v["sha256"] for k, v in sources.items()}
        and (root / entry.get("output", "")).is_file()
        and os.path.getsize(root / entry["output"]) == entry.get("output_bytes")
    )
