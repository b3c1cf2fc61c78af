"""Loading, validating and writing cases: one HDF5 file with datasets ``image`` and ``label``.

Arrays are (X, Y, Z) with Z the slice axis. Loaded arrays are made read-only so that one copy
can be shared by the training loop and by forked DataLoader workers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from benchmarks.data.layouts import Layout, Spacing, check_unique
from benchmarks.errors import DataError
from benchmarks.io import temp_file


@dataclass(frozen=True, eq=False)
class Case:
    """One validated case: ``image`` float32 (X, Y, Z), ``label`` uint8 (X, Y, Z) in {0, 1},
    ``spacing`` voxel size in mm along (X, Y, Z), ``path`` the HDF5 file it came from, ``casts`` the dtype
    conversions made on loading (``"image float64 -> float32"``)."""

    id: str
    image: np.ndarray
    label: np.ndarray
    spacing: Spacing
    path: Path
    casts: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image.shape  # type: ignore[return-value]


def _read_spacing(handle: h5py.File, where: str, default: Spacing) -> Spacing:
    if "spacing" not in handle.attrs:
        return default
    value = np.asarray(handle.attrs["spacing"])
    if (
        value.shape != (3,)
        or not np.issubdtype(value.dtype, np.number)
        or not np.all(np.isfinite(value))
        or np.any(value <= 0)
    ):
        raise DataError(f"{where}: attribute 'spacing' must be 3 positive finite numbers (mm), got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _read_array(handle: h5py.File, key: str, where: str) -> np.ndarray:
    if key not in handle:
        raise DataError(f"{where}: missing dataset {key!r} (found: {sorted(handle.keys())})")
    node = handle[key]
    if not isinstance(node, h5py.Dataset):
        raise DataError(f"{where}: {key!r} is a {type(node).__name__}, not a dataset")
    try:
        array = node[()]
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{where}: cannot read dataset {key!r} ({exc})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 3:
        raise DataError(f"{where}: {key!r} must be a 3-D array (X, Y, Z), got shape {np.shape(array)}")
    if 0 in array.shape:
        raise DataError(f"{where}: {key!r} has an axis of size 0 (shape {array.shape})")
    kind = array.dtype.kind
    if kind not in "iuf" and not (key == "label" and kind == "b"):
        raise DataError(f"{where}: {key!r} has unsupported dtype {array.dtype} (need int, uint or float)")
    return array


def _validate_label(label: np.ndarray, where: str, require_foreground: bool) -> np.ndarray:
    bad = (label != 0) & (label != 1)
    if bad.any():
        values = np.unique(label[bad])
        shown = ", ".join(repr(v.item()) for v in values[:5]) + (", ..." if values.size > 5 else "")
        raise DataError(f"{where}: label has {int(bad.sum())} voxels outside {{0, 1}} (values: {shown})")
    label = label.astype(np.uint8, copy=False)
    if require_foreground and not label.any():
        raise DataError(f"{where}: label is empty (no foreground voxel)")
    return label


def load_case(
    path: str | os.PathLike[str],
    case_id: str,
    default_spacing: Spacing,
    require_foreground: bool = True,
) -> Case:
    """Read and validate one case (protocols.md §1); raises DataError naming file, case and fault.

    Float labels exactly 0.0/1.0 and bool labels are cast to uint8; integer or float64 images
    are cast to float32 and must be finite after the cast, and not constant (a blank volume).
    The casts are listed in :attr:`Case.casts`.
    """
    path = Path(path)
    where = f"{path} (case {case_id})"
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{where}: not a readable HDF5 file ({exc})") from None
    with handle:
        image = _read_array(handle, "image", where)
        label = _read_array(handle, "label", where)
        spacing = _read_spacing(handle, where, default_spacing)
    if image.shape != label.shape:
        raise DataError(f"{where}: image shape {image.shape} != label shape {label.shape}")
    casts = tuple(f"{key} {array.dtype} -> {dtype}" for key, array, dtype in
                  (("image", image, "float32"), ("label", label, "uint8")) if array.dtype != dtype)
    with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
        image = image.astype(np.float32, copy=False)
    finite = np.isfinite(image)
    if not finite.all():
        n_nan = int(np.isnan(image).sum())
        raise DataError(f"{where}: image has non-finite values ({n_nan} NaN, {int((~finite).sum()) - n_nan} infinite)")
    if image.min() == image.max():
        raise DataError(f"{where}: image is constant (every voxel {image.flat[0]:g}); a blank volume, "
                        "check its conversion")
    label = _validate_label(label, where, require_foreground)
    image = np.ascontiguousarray(image)
    label = np.ascontiguousarray(label)
    image.setflags(write=False)
    label.setflags(write=False)
    return Case(case_id, image, label, spacing, path, casts)


def write_case(
    path: str | os.PathLike[str],
    image: np.ndarray | None,
    label: np.ndarray | None,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Write ``image``/``label`` (as given, no validation; None omits the key) and the optional
    ``spacing`` attribute (mm) atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_file(path)
    try:
        with h5py.File(tmp, "w") as handle:
            if image is not None:
                handle.create_dataset("image", data=image)
            if label is not None:
                handle.create_dataset("label", data=label, compression="gzip", compression_opts=1)
            if spacing is not None:
                handle.attrs["spacing"] = np.asarray(spacing, dtype=np.float64)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class CaseStore(Mapping[str, Case]):
    """Validated cases held in memory, keyed by ID, iterated in list order."""

    def __init__(self, cases: Sequence[Case]):
        check_unique([case.id for case in cases], "CaseStore")
        self._cases = {case.id: case for case in cases}

    @classmethod
    def load(
        cls,
        layout: Layout,
        root: str | os.PathLike[str],
        ids: Sequence[str],
        *,
        require_foreground: bool = True,
        source: str = "the ID list",
        progress: bool | None = None,
    ) -> CaseStore:
        """Load ``ids`` (e.g. ``layout.train_ids(root)``) once; ``source`` names the list in errors.

        Every file is checked to exist before any is read. ``progress=None`` shows a bar only on a tty.
        """
        if not ids:
            raise DataError(f"{source}: no case IDs to load")
        check_unique(list(ids), source)
        paths = {case_id: layout.case_path(root, case_id) for case_id in ids}
        missing = [(case_id, p) for case_id, p in paths.items() if not p.is_file()]
        if missing:
            shown = "; ".join(f"{case_id!r}: {p}" for case_id, p in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(f"{source}: {len(missing)} listed case(s) have no file: {shown}{more}")
        disable = not sys.stderr.isatty() if progress is None else not progress
        cases = [
            load_case(p, case_id, layout.spacing, require_foreground)
            for case_id, p in tqdm(paths.items(), desc=f"loading {layout.name}", unit="case", disable=disable)
        ]
        return cls(cases)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._cases)

    def __getitem__(self, case_id: str) -> Case:
        try:
            return self._cases[case_id]
        except KeyError:
            raise KeyError(f"case {case_id!r} is not loaded in this store") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._cases)

    def __len__(self) -> int:
        return len(self._cases)

    def arrays(self, ids: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image, label) pairs of ``ids`` in order, sharing the stored (read-only) arrays."""
        return [(self[case_id].image, self[case_id].label) for case_id in ids]
