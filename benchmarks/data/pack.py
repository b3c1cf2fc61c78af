"""Compact, lossless, checksummed packs of a dataset root (``sslbench pack`` / ``sslbench unpack``).

A pack is a folder holding ``manifest.json`` and ``part-0000.bin``, ``part-0001.bin``, ...: one byte stream
cut every ``part_size`` bytes. Each stored array or file is one xz (lzma) blob at an offset of that stream,
so a blob may span parts and any part size works.

An array with at most 256 distinct values (compared bit for bit, so -0.0 and NaN payloads survive) is stored
as its table of values plus one uint8 index per voxel (``index8``), with at most 2 values as one bit per
voxel (``index1``: binary labels); otherwise as its raw bytes (``raw``). The manifest records per case the
layout path of its HDF5 file, the attributes, and per dataset its dtype, shape, HDF5 storage (chunks,
filter) and the sha256 of the original array's bytes; per small file (split lists and the like) its
sha256; per part its size and sha256. Unpacking checks every part, then rebuilds each file and verifies
each array against its checksum, naming the part, case or dataset at fault.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import h5py
import numpy as np
from tqdm import tqdm

from benchmarks.data.layouts import Layout, builtin_layouts, get_layout
from benchmarks.errors import ConfigError, DataError, SSLBenchError
from benchmarks.io import TEMP_SUFFIX, atomic_path, temp_dir, write_atomic, write_json

FORMAT = "sslbench-pack"
VERSION = 1
MANIFEST = "manifest.json"
#: Files other than cases and lists are packed up to this size (bytes); larger ones are skipped and listed.
SMALL_FILE = 1 << 20
_XZ_PRESET = 6
_STORAGE_FILTERS = ("gzip", "lzf")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PackSummary:
    """What :func:`pack_dataset` wrote: ``part_sizes`` in bytes, ``source_bytes`` the packed files on disk."""

    path: Path
    layout: str
    cases: int
    files: int
    skipped: tuple[str, ...]
    part_sizes: tuple[int, ...]
    source_bytes: int

    @property
    def size(self) -> int:
        return sum(self.part_sizes)


@dataclass(frozen=True)
class UnpackSummary:
    """What :func:`unpack_dataset` rebuilt and verified under ``root``."""

    root: Path
    cases: int
    files: int


def encode_array(array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """(record, payload) of one array; the payload is ``table + index`` bytes or the raw bytes, uncompressed."""
    array = np.ascontiguousarray(array)
    flat = array.reshape(-1)
    record: dict[str, Any] = {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "sha256": hashlib.sha256(flat.view(np.uint8)).hexdigest(),
    }
    if array.dtype.itemsize in (1, 2, 4, 8):
        table, index = np.unique(flat.view(f"u{array.dtype.itemsize}"), return_inverse=True)
        if len(table) <= 2:
            record.update(encoding="index1", values=len(table))
            return record, table.tobytes() + np.packbits(index.astype(np.uint8)).tobytes()
        if len(table) <= 256 and array.dtype.itemsize > 1:
            record.update(encoding="index8", values=len(table))
            return record, table.tobytes() + index.astype(np.uint8).tobytes()
    record["encoding"] = "raw"
    return record, flat.view(np.uint8).tobytes()


def decode_array(record: dict[str, Any], payload: bytes) -> np.ndarray:
    """Inverse of :func:`encode_array`; ValueError if the payload does not fit the record."""
    dtype, shape = np.dtype(record["dtype"]), tuple(record["shape"])
    size = int(np.prod(shape, dtype=np.int64))
    if record["encoding"] == "raw":
        if len(payload) != size * dtype.itemsize:
            raise ValueError(f"{len(payload)} bytes for {size} values of {dtype}")
        return np.frombuffer(payload, dtype=dtype).reshape(shape)
    bits = {"index1": 1, "index8": 8}.get(record["encoding"])
    if bits is None:
        raise ValueError(f"unknown encoding {record['encoding']!r}")
    table_bytes = int(record["values"]) * dtype.itemsize
    table = np.frombuffer(payload[:table_bytes], dtype=f"u{dtype.itemsize}")
    index = np.frombuffer(payload[table_bytes:], dtype=np.uint8)
    expected = -(-size // 8) if bits == 1 else size
    if len(table) * dtype.itemsize != table_bytes or len(index) != expected:
        raise ValueError(f"{len(payload)} bytes do not hold a {record['values']}-value table and {size} indices")
    if bits == 1:
        index = np.unpackbits(index, count=size)
    if size and int(index.max()) >= len(table):
        raise ValueError("an index points past the value table")
    return table[index].view(dtype).reshape(shape)


def detect_layout(root: str | os.PathLike[str]) -> Layout:
    """The one registered layout whose list files and first training case exist under ``root``."""
    root = Path(root)
    matches, known = [], builtin_layouts()
    for layout in known.values():
        try:
            first = layout.train_ids(root)[0]
        except DataError:
            continue
        if all((root / name).is_file() for name in layout.test_lists) and layout.case_path(root, first).is_file():
            matches.append(layout.name)
    if len(matches) != 1:
        found = "none" if not matches else " and ".join(matches)
        raise ConfigError(f"{root}: cannot tell its dataset layout (matching: {found}); pass --layout, one of "
                          f"{', '.join(sorted(known))}")
    return known[matches[0]]


def pack_dataset(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    layout: str | None = None,
    cases: Sequence[str] | None = None,
    part_size: int | None = None,
    jobs: int = 1,
    progress: bool | None = None,
) -> PackSummary:
    """Pack the cases, split lists and other small files of ``root`` into the folder ``out``.

    ``cases`` packs only those listed IDs, and the lists restricted to them (order kept). ``part_size``
    (bytes) caps each part; None writes one part. The pack is built in a hidden folder beside ``out`` and
    renamed into place, replacing an earlier pack there; a folder that is not a pack is never replaced.
    """
    root, out = Path(root), Path(out)
    if part_size is not None and part_size < 1:
        raise ConfigError(f"part size must be positive, got {part_size} bytes")
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    if out.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{out}: the pack must be written outside the dataset root {root}")
    if out.exists() and not (out / MANIFEST).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not a pack; choose another --out")
    chosen = get_layout(layout) if layout else detect_layout(root)
    train, test = chosen.read_lists(root)
    listed = [*train, *test]
    ids = listed if cases is None else _select(cases, listed, root)
    case_paths = {case_id: _posix(chosen.case_path(root, case_id), root) for case_id in ids}
    missing = [f"{case_id!r} ({path})" for case_id, path in case_paths.items() if not (root / path).is_file()]
    if missing:
        raise DataError(f"{root}: {len(missing)} listed case(s) have no file: {'; '.join(missing[:3])}")
    lists = {name: _list_bytes(root / name, None if cases is None else set(ids))
             for name in dict.fromkeys((*chosen.train_lists, *chosen.test_lists))}
    excluded = {_posix(chosen.case_path(root, case_id), root) for case_id in listed} | set(lists)
    others, skipped = _other_files(root, excluded)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out)
    try:
        writer = _PartWriter(tmp, part_size)
        files = [_file_record(name, data, writer) for name, data in lists.items()]
        files += [_file_record(name, (root / name).read_bytes(), writer) for name in others]
        records = []
        encoded = _ordered_map(partial(_encode_case, root), jobs, ids, [case_paths[c] for c in ids])
        for record, blobs in tqdm(encoded, total=len(ids), desc="packing", unit="case", disable=_quiet(progress)):
            for dataset, blob in zip(record["datasets"], blobs):
                dataset["blob"] = writer.write(blob)
            records.append(record)
        parts = writer.parts()
        manifest = {
            "format": FORMAT, "version": VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": str(root.resolve()), "layout": chosen.name,
            "selected_cases": cases is not None, "skipped": skipped,
            "part_size": part_size, "parts": parts, "files": files, "cases": records,
        }
        write_json(tmp / MANIFEST, manifest)
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    source_bytes = sum((root / p).stat().st_size for p in (*case_paths.values(), *others)) + sum(
        len(data) for data in lists.values())
    return PackSummary(out, chosen.name, len(records), len(files), tuple(skipped),
                       tuple(p["size"] for p in parts), source_bytes)


def unpack_dataset(
    pack: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    progress: bool | None = None,
) -> UnpackSummary:
    """Rebuild the dataset root ``out`` from ``pack``; DataError names the part, case or dataset at fault.

    Every part is checked (present, size, sha256) before anything is written; each array and file is verified
    against its original sha256 before its file is written (atomically); the lists are written last.
    """
    pack, out = Path(pack), Path(out)
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    manifest = read_manifest(pack)
    reader = _PartReader(pack, manifest["parts"])
    files = []
    for entry in manifest["files"]:
        where = f"{pack}: file {entry.get('path')!r}"
        files.append(_entry(partial(_decode_file, reader, entry, where), where))
    cases = manifest["cases"]
    done = _ordered_map(partial(_unpack_case, pack, reader, out), jobs, cases)
    for _ in tqdm(done, total=len(cases), desc="unpacking", unit="case", disable=_quiet(progress)):
        pass
    for name, data in files:
        write_atomic(out / name, lambda f, d=data: f.write(d))
    return UnpackSummary(out, len(cases), len(files))


def read_manifest(pack: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of ``pack``, checked for format, version and its top-level keys."""
    path = Path(pack) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: not found ({pack} is not a pack, or an incomplete copy of one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not an {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DataError(f"{path}: unknown pack version {manifest.get('version')!r} (this sslbench reads "
                        f"version {VERSION})")
    for key in ("parts", "files", "cases"):
        if not isinstance(manifest.get(key), list):
            raise DataError(f"{path}: malformed manifest (key {key!r} must be a list)")
    return manifest


class _PartWriter:
    """Appends blobs to ``part-NNNN.bin`` files of at most ``part_size`` bytes; :meth:`parts` lists them."""

    def __init__(self, folder: Path, part_size: int | None) -> None:
        self.folder, self.part_size = folder, part_size
        self._parts: list[dict[str, Any]] = []
        self._hashes: list[Any] = []
        self.offset = 0
        self._next()

    def write(self, data: bytes) -> list[int]:
        """Append ``data``; returns its [offset, length] in the stream."""
        start, view = self.offset, memoryview(data)
        while view:
            part = self._parts[-1]
            room = len(view) if self.part_size is None else self.part_size - part["size"]
            if room == 0:
                self._next()
                continue
            chunk = view[:room]
            with open(self.folder / part["name"], "ab") as handle:
                handle.write(chunk)
            self._hashes[-1].update(chunk)
            part["size"] += len(chunk)
            view = view[len(chunk):]
        self.offset += len(data)
        return [start, len(data)]

    def parts(self) -> list[dict[str, Any]]:
        """Name, size (bytes) and sha256 of each part written so far."""
        return [{**part, "sha256": digest.hexdigest()} for part, digest in zip(self._parts, self._hashes)]

    def _next(self) -> None:
        name = f"part-{len(self._parts):04d}.bin"
        (self.folder / name).touch()
        self._parts.append({"name": name, "size": 0})
        self._hashes.append(hashlib.sha256())


class _PartReader:
    """Reads [offset, length] ranges of a pack's stream after checking each part's presence, size and sha256."""

    def __init__(self, pack: Path, parts: list[dict[str, Any]]) -> None:
        names = [_safe_path(part.get("name", ""), f"{pack / MANIFEST}: part") for part in parts]
        absent = [str(name) for name in names if not (pack / name).is_file()]
        if absent:
            raise DataError(f"{pack}: missing part(s) {', '.join(absent)} ({len(absent)} of {len(parts)}); "
                            "copy them beside manifest.json")
        self.paths = [pack / name for name in names]
        for path, part in zip(self.paths, parts):
            size = path.stat().st_size
            if size != part["size"]:
                raise DataError(f"{path}: {size} bytes, the manifest says {part['size']} (truncated or from "
                                "another pack)")
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            if digest != part["sha256"]:
                raise DataError(f"{path}: bad checksum (sha256 {digest[:16]}..., the manifest says "
                                f"{part['sha256'][:16]}...); copy the part again")
        self.starts = np.cumsum([0] + [part["size"] for part in parts]).tolist()

    def blob(self, span: Sequence[int]) -> bytes:
        """The decompressed blob at ``span`` = [offset, length]."""
        offset, length = int(span[0]), int(span[1])
        if offset < 0 or length < 0 or offset + length > self.starts[-1]:
            raise ValueError(f"blob [{offset}, {length}] lies outside the {self.starts[-1]}-byte stream")
        pieces = []
        for path, start, end in zip(self.paths, self.starts, self.starts[1:]):
            lo, hi = max(offset, start), min(offset + length, end)
            if lo < hi:
                with open(path, "rb") as handle:
                    handle.seek(lo - start)
                    pieces.append(handle.read(hi - lo))
        return lzma.decompress(b"".join(pieces), format=lzma.FORMAT_XZ)


def _encode_case(root: Path, case_id: str, path: str) -> tuple[dict[str, Any], list[bytes]]:
    """The manifest record of one case and the compressed blobs of its datasets, in record order."""
    where = f"{root / path} (case {case_id})"
    try:
        handle = h5py.File(root / path, "r")
    except OSError as exc:
        raise DataError(f"{where}: not a readable HDF5 file ({exc})") from None
    record: dict[str, Any] = {"id": case_id, "path": path, "groups": [], "datasets": []}
    blobs = []
    with handle:
        record["attrs"] = _encode_attrs(handle.attrs, where)
        nodes: list[tuple[str, Any]] = []
        handle.visititems(lambda name, node: nodes.append((name, node)))
        for name, node in nodes:
            if isinstance(node, h5py.Group):
                record["groups"].append({"name": name, "attrs": _encode_attrs(node.attrs, f"{where} group {name!r}")})
                continue
            if node.dtype.kind not in "biufc":
                raise DataError(f"{where}: dataset {name!r} has dtype {node.dtype}; a pack holds numeric arrays only")
            try:
                array = node[()]
            except (OSError, ValueError, TypeError) as exc:
                raise DataError(f"{where}: cannot read dataset {name!r} ({exc})") from None
            dataset, payload = encode_array(np.asarray(array))
            dataset = {"name": name, **dataset, "storage": _storage(node),
                       "attrs": _encode_attrs(node.attrs, f"{where} dataset {name!r}")}
            record["datasets"].append(dataset)
            blobs.append(lzma.compress(payload, format=lzma.FORMAT_XZ, preset=_XZ_PRESET))
    return record, blobs


def _decode_file(reader: _PartReader, entry: dict[str, Any], where: str) -> tuple[PurePosixPath, bytes]:
    data = reader.blob(entry["blob"])
    _verify(data, entry["sha256"], where)
    return _safe_path(entry["path"], where), data


def _unpack_case(pack: Path, reader: _PartReader, out: Path, record: dict[str, Any]) -> None:
    """Decode, verify and write one case's HDF5 file."""
    where = f"{pack}: case {record.get('id')!r} ({record.get('path')})"
    _entry(partial(_write_case, reader, out, record, where), where)


def _write_case(reader: _PartReader, out: Path, record: dict[str, Any], where: str) -> None:
    path = out / _safe_path(record["path"], where)
    arrays = []
    for dataset in record["datasets"]:
        at = f"{where} dataset {dataset['name']!r}"
        array = _entry(lambda d=dataset: decode_array(d, reader.blob(d["blob"])), at)
        _verify(array.reshape(-1).view(np.uint8), dataset["sha256"], at)
        arrays.append(array)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        _set_attrs(handle.attrs, record["attrs"])
        for group in record["groups"]:
            _set_attrs(handle.require_group(group["name"]).attrs, group["attrs"])
        for dataset, array in zip(record["datasets"], arrays):
            node = handle.create_dataset(dataset["name"], data=array, **_storage_options(dataset["storage"]))
            _set_attrs(node.attrs, dataset["attrs"])


def _entry(decode: Callable[[], T], where: str) -> T:
    """Run one decoding step, turning a corrupt blob or a malformed record into a DataError naming ``where``."""
    try:
        return decode()
    except SSLBenchError:
        raise
    except lzma.LZMAError as exc:
        raise DataError(f"{where}: corrupt compressed data ({exc})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: malformed pack entry ({type(exc).__name__}: {exc})") from None


def _verify(data: Any, sha256: str, where: str) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{where}: checksum mismatch after decoding (corrupt pack)")


def _storage(node: h5py.Dataset) -> dict[str, Any]:
    """The HDF5 storage of a dataset that :func:`_storage_options` re-creates (chunks, lossless filters)."""
    compression = node.compression if node.compression in _STORAGE_FILTERS else None
    return {"chunks": list(node.chunks) if node.chunks else None, "compression": compression,
            "compression_opts": node.compression_opts if compression == "gzip" else None,
            "shuffle": bool(node.shuffle), "fletcher32": bool(node.fletcher32)}


def _storage_options(storage: dict[str, Any]) -> dict[str, Any]:
    chunks = storage["chunks"]
    return {**storage, "chunks": tuple(chunks) if chunks else None}


def _encode_attrs(attrs: h5py.AttributeManager, where: str) -> dict[str, dict[str, Any]]:
    """Attributes as JSON: text as ``text``, numbers and byte strings as dtype, shape and hex bytes."""
    encoded = {}
    for key in attrs:
        try:
            value = attrs[key]
        except (OSError, TypeError) as exc:
            raise DataError(f"{where}: cannot read attribute {key!r} ({exc})") from None
        if isinstance(value, str):
            encoded[key] = {"text": value}
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "biufcS":
            raise DataError(f"{where}: attribute {key!r} has unsupported type {type(value).__name__}")
        encoded[key] = {"dtype": array.dtype.str, "shape": list(array.shape), "hex": array.tobytes().hex()}
    return encoded


def _set_attrs(attrs: h5py.AttributeManager, encoded: dict[str, dict[str, Any]]) -> None:
    for key, value in encoded.items():
        if "text" in value:
            attrs[key] = value["text"]
        else:
            attrs[key] = np.frombuffer(bytes.fromhex(value["hex"]), dtype=value["dtype"]).reshape(value["shape"])


def _file_record(name: str, data: bytes, writer: _PartWriter) -> dict[str, Any]:
    blob = lzma.compress(data, format=lzma.FORMAT_XZ, preset=_XZ_PRESET)
    return {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "blob": writer.write(blob)}


def _list_bytes(path: Path, keep: set[str] | None) -> bytes:
    """The list file as it is, or (``keep`` given) one line per kept ID in list order."""
    if keep is None:
        return path.read_bytes()
    ids = path.read_text(encoding="utf-8").split()
    return "".join(f"{case_id}\n" for case_id in ids if case_id in keep).encode()


def _select(cases: Sequence[str], listed: list[str], root: Path) -> list[str]:
    """The listed IDs that are in ``cases``, in list order; DataError naming IDs in no list."""
    known, chosen = set(listed), set(cases)
    unknown = [case_id for case_id in cases if case_id not in known]
    if unknown:
        raise DataError(f"{root}: case(s) {', '.join(map(repr, unknown[:3]))} are in none of its lists")
    return [case_id for case_id in listed if case_id in chosen]


def _other_files(root: Path, excluded: set[str]) -> tuple[list[str], list[str]]:
    """(kept, skipped): files under ``root`` other than ``excluded``, by size (:data:`SMALL_FILE`)."""
    kept, skipped = [], []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            relative = _posix(path, root)
            if relative in excluded or (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                continue
            (kept if path.stat().st_size <= SMALL_FILE else skipped).append(relative)
    return kept, skipped


def _posix(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _safe_path(name: str, where: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside the folder it is joined to."""
    path = PurePosixPath(name) if isinstance(name, str) else PurePosixPath()
    if not path.parts or path.is_absolute() or ".." in path.parts:
        raise DataError(f"{where}: unsafe path {name!r} in the manifest")
    return path


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished pack ``tmp`` to ``out``, removing an earlier pack (or empty folder) there."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=TEMP_SUFFIX, dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(tmp, out)
    shutil.rmtree(old)


def _ordered_map(function: Callable[..., R], jobs: int, *items: Iterable[Any]) -> Iterator[R]:
    """``map`` in order, in ``jobs`` processes when ``jobs > 1`` (h5py serialises threads)."""
    if jobs == 1:
        yield from map(function, *items)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(function, *items)


def _quiet(progress: bool | None) -> bool:
    return not sys.stderr.isatty() if progress is None else not progress
