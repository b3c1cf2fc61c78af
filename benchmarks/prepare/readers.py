"""Reading raw volumes (nrrd, NIfTI, DICOM series) with SimpleITK into (X, Y, Z) arrays and their geometry.

Every failure is a :class:`DataError` naming the file: unreadable or missing file, a non-3-D image, a spacing
that is zero, negative or not finite. NIfTI headers are also checked directly because ITK silently replaces a
zero ``pixdim`` with 1 mm.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmarks.errors import DataError

#: Geometry tolerances between an image and its label: relative for spacing, absolute (mm) for the origin,
#: absolute for the direction cosines.
SPACING_RTOL = 1e-4
ORIGIN_ATOL_MM = 1e-2
DIRECTION_ATOL = 1e-4


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D array (X, Y, Z) (X = image column, Z = slice axis) with its physical geometry.

    ``spacing``: voxel size in mm along (X, Y, Z); ``origin``: physical position (mm, LPS as ITK reports it)
    of voxel (0, 0, 0); ``direction``: 3x3 matrix whose columns are the X, Y, Z axis directions. A voxel index
    k maps to ``origin + direction @ (spacing * k)``.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape  # type: ignore[return-value]

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry with another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} != {self.array.shape}")
        return replace(self, array=array)

    def physical_point(self, index: np.ndarray) -> np.ndarray:
        """Physical position (mm) of the continuous voxel index ``index`` (3,)."""
        return np.asarray(self.origin) + self.direction @ (np.asarray(self.spacing) * np.asarray(index, float))


def _check_spacing(spacing: tuple[float, ...], where: str) -> None:
    values = np.asarray(spacing, dtype=float)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DataError(f"{where}: voxel spacing must be 3 positive finite numbers (mm), got {tuple(spacing)}")


def _nifti_pixdim(path: Path) -> tuple[float, float, float] | None:
    """pixdim[1:4] of a NIfTI-1 header (None if the file is not NIfTI-1)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(348)
    except OSError as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None
    if len(header) < 348:
        return None
    for order in "<>":
        if struct.unpack(f"{order}i", header[:4])[0] == 348:
            return struct.unpack(f"{order}3f", header[80:92])
    return None


def _from_sitk(image: sitk.Image, where: str) -> Volume:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{where}: expected a 3-D single-channel image, got dimension {image.GetDimension()} "
                        f"with {image.GetNumberOfComponentsPerPixel()} component(s)")
    spacing = tuple(float(s) for s in image.GetSpacing())
    _check_spacing(spacing, where)
    array = np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return Volume(array, spacing, tuple(float(o) for o in image.GetOrigin()), direction, where)  # type: ignore[arg-type]


def read_volume(path: str | os.PathLike[str]) -> Volume:
    """Read one nrrd/NIfTI/mha file (any format SimpleITK reads) as a (X, Y, Z) :class:`Volume`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.name.endswith((".nii", ".nii.gz")):
        pixdim = _nifti_pixdim(path)
        if pixdim is not None:
            _check_spacing(tuple(abs(p) for p in pixdim), f"{path} (NIfTI pixdim)")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        text = str(exc)
        if "Zero-valued spacing" in text:
            raise DataError(f"{path}: voxel spacing is zero on some axis") from None
        raise DataError(f"{path}: unreadable image ({text.strip().splitlines()[-1][:200]})") from None
    return _from_sitk(image, str(path))


def dicom_files(folder: Path) -> list[Path]:
    """The ``*.dcm`` files below ``folder`` (any depth, macOS ``._`` files skipped), sorted by path."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm"
                  and not p.name.startswith("._"))


def _instance_number(path: Path) -> int:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        return int(reader.GetMetaData("0020|0013").strip())
    except (RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: unreadable DICOM slice or no InstanceNumber (0020,0013) ({exc})") from None


def read_dicom_series(folder: str | os.PathLike[str], order: str = "instance") -> tuple[Volume, list[Path]]:
    """All ``*.dcm`` slices under ``folder`` as one (X, Y, Z) volume in Hounsfield units (ITK applies the
    rescale slope and intercept) and the slice files in stacking order.

    ``order``: ``instance`` sorts by InstanceNumber (MC-Net+ notebook), ``name`` by file path (CoraNet script).
    The geometry is the series' own (origin of the first slice, in-plane PixelSpacing, slice distance).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DICOM folder not found")
    files = dicom_files(folder)
    if len(files) < 2:
        raise DataError(f"{folder}: need at least 2 DICOM slices (*.dcm), found {len(files)}")
    if order == "instance":
        numbers = {path: _instance_number(path) for path in files}
        if len(set(numbers.values())) != len(files):
            raise DataError(f"{folder}: duplicate InstanceNumber among {len(files)} slices")
        files.sort(key=numbers.__getitem__)
    elif order != "name":
        raise ValueError(f"unknown slice order {order!r}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in files])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise DataError(f"{folder}: unreadable DICOM series ({str(exc).strip().splitlines()[-1][:200]})") from None
    return _from_sitk(image, str(folder)), files


def check_same_geometry(image: Volume, label: Volume, *, check_spacing: bool = True, check_origin: bool = True) -> None:
    """Raise DataError naming both sources if their shape, spacing, origin or direction differ beyond the
    module tolerances (:data:`SPACING_RTOL`, :data:`ORIGIN_ATOL_MM`, :data:`DIRECTION_ATOL`)."""
    where = f"{image.source} vs {label.source}"
    if image.shape != label.shape:
        raise DataError(f"{where}: image shape {image.shape} != label shape {label.shape} (X, Y, Z)")
    if check_spacing and not np.allclose(image.spacing, label.spacing, rtol=SPACING_RTOL, atol=0):
        raise DataError(f"{where}: image spacing {image.spacing} != label spacing {label.spacing} (mm)")
    if check_origin:
        if not np.allclose(image.origin, label.origin, rtol=0, atol=ORIGIN_ATOL_MM):
            raise DataError(f"{where}: image origin {image.origin} != label origin {label.origin} (mm)")
        if not np.allclose(image.direction, label.direction, rtol=0, atol=DIRECTION_ATOL):
            raise DataError(f"{where}: image and label axis directions differ")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
