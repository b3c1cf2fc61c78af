"""Writers of tiny synthetic raw datasets in each public format, with known anisotropic geometry.

Every dataset has one *probe* case (the first listed) of 30 x 28 x 10 voxels at 0.75 x 0.75 x 2.5 mm whose
label is the box x 12..17, y 8..13, z 4..6 (inclusive); the other cases are 12 x 12 x 4 voxels with a
small box. Images hold -1000 + 10 * x + 7 * y + 60 * z plus a bright target (CT-like values in HU).
"""

from __future__ import annotations

import json
import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmarks.prepare.recipes import packaged_list

SPACING = (0.75, 0.75, 2.5)
ORIGIN = (-40.0, 12.5, 100.0)
PROBE_SHAPE = (30, 28, 10)
PROBE_BOX = ((12, 17), (8, 13), (4, 6))
SMALL_SHAPE = (12, 12, 4)


def synthetic_pair(shape: tuple[int, int, int], box: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(image int16 HU, label uint8 {0, 1}) of ``shape`` (X, Y, Z), label 1 on the inclusive ``box``."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    image = -1000 + 10 * x + 7 * y + 60 * z
    label = np.zeros(shape, np.uint8)
    label[tuple(slice(lo, hi + 1) for lo, hi in box)] = 1
    image[label == 1] += 900
    return image.astype(np.int16), label


def case_arrays(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Case ``index`` of a dataset (0 = the probe)."""
    if index == 0:
        return synthetic_pair(PROBE_SHAPE, PROBE_BOX)
    return synthetic_pair(SMALL_SHAPE, ((4, 7), (3, 6), (1, 2)))


def to_sitk(array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, float).ravel()))
    return image


def write_volume(path: Path, array: np.ndarray, **geometry) -> Path:
    """Write an (X, Y, Z) array as nrrd / NIfTI (by suffix) with the given geometry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk(array, **geometry), str(path))
    return path


def write_dicom_series(folder: Path, image: np.ndarray, spacing=SPACING, origin=ORIGIN) -> Path:
    """One CT slice file per Z index with the tags the readers need. File names run opposite to the
    InstanceNumber (``s000.dcm`` is the last instance), so name order and instance order differ."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    depth = image.shape[2]
    saved = locale.setlocale(locale.LC_ALL)  # GDCM's DICOM writer switches the process to the "C" locale
    for z in range(depth):
        slice_ = to_sitk(image[:, :, z:z + 1], spacing, origin)
        position = (origin[0], origin[1], origin[2] + z * spacing[2])
        tags = {"0008|0060": "CT", "0020|0013": str(z + 1), "0020|0032": "\\".join(f"{v:g}" for v in position),
                "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": f"{spacing[1]:g}\\{spacing[0]:g}",
                "0018|0050": f"{spacing[2]:g}", "0028|1052": "-1024", "0028|1053": "1",
                "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": "1.2.826.0.1.3680043.2.1125.2",
                "0008|0018": f"1.2.826.0.1.3680043.2.1125.3.{z + 1}"}
        for key, value in tags.items():
            slice_.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"s{depth - 1 - z:03d}.dcm"))
        writer.Execute(slice_)
    locale.setlocale(locale.LC_ALL, saved)
    return folder


def make_la(root: Path) -> Path:
    ids = packaged_list("la_train.list") + packaged_list("la_test.list")
    for i, case_id in enumerate(ids):
        image, label = case_arrays(i)
        write_volume(root / case_id / "lgemri.nrrd", image)
        write_volume(root / case_id / "laendo.nrrd", (label * 255).astype(np.uint8))
    return root


def pancreas_numbers() -> list[str]:
    """The 80 patient numbers of the current TCIA download (0025 and 0070 removed), probe first."""
    return [f"{n:04d}" for n in range(1, 83) if n not in (25, 70)]


def make_pancreas(root: Path, numbers: list[str]) -> Path:
    for i, n in enumerate(numbers):
        image, label = case_arrays(i)
        write_dicom_series(root / "Pancreas-CT" / f"PANCREAS_{n}" / "study" / "series", image)
        write_volume(root / "TCIA_pancreas_labels-02-05-2017" / f"label{n}.nii.gz", label)
    return root


def make_msd(root: Path, ids: list[str], v2: bool = False, labels: dict | None = None,
             direction=None) -> Path:
    """MSD (``imagesTr/<id>.nii.gz``) or nnU-Net v2 (``<id>_0000.nii.gz``) raw folder with dataset.json."""
    for i, case_id in enumerate(ids):
        image, label = case_arrays(i)
        suffix = "_0000" if v2 else ""
        write_volume(root / "imagesTr" / f"{case_id}{suffix}.nii.gz", image, direction=direction)
        write_volume(root / "labelsTr" / f"{case_id}.nii.gz", label, direction=direction)
    meta: dict = {"name": "synthetic", "labels": labels or ({"background": 0, "tumour": 1} if v2 else
                                                          {"0": "background", "1": "cancer"})}
    if v2:
        meta.update(channel_names={"0": "CT"}, file_ending=".nii.gz", numTraining=len(ids))
    else:
        meta["training"] = [{"image": f"./imagesTr/{i}.nii.gz", "label": f"./labelsTr/{i}.nii.gz"} for i in ids]
    (root / "dataset.json").write_text(json.dumps(meta))
    (root / "labelsTr" / "._junk.nii.gz").write_bytes(b"macOS resource fork")
    return root


def lung_ids() -> list[str]:
    """The 63 Task06 IDs, the first line of ``lung_train.list`` first (it becomes the probe)."""
    return packaged_list("lung_train.list") + packaged_list("lung_test.list")
