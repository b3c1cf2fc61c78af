"""NIH Pancreas-CT (TCIA DICOM series + NIfTI labels) in the MC-Net+ and the CoraNet protocols (protocols.md §3-4).

Raw layout (as downloaded): ``<raw>/.../PANCREAS_0001/<study>/<series>/*.dcm`` (any depth) and
``<raw>/.../label0001.nii.gz`` (``TCIA_pancreas_labels-02-05-2017``). Patient ``PANCREAS_0001`` is case
``image0001`` (MC-Net+) and ``data0001`` (CoraNet). The DICOM voxel array and the label array must have the
same (X, Y, Z) shape: both protocols stack the slices and use the label array as it is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from benchmarks.errors import DataError
from benchmarks.prepare import steps
from benchmarks.prepare.readers import Volume, check_same_geometry, read_dicom_series, read_volume
from benchmarks.prepare.recipes import (
    SPLIT,
    Prepared,
    RawCase,
    Recipe,
    check_label_values,
    check_range,
    packaged_list,
    require_nonnegative,
    volume_info,
)

#: Patients TCIA removed as duplicates; the MC-Net+ lists still use them.
REMOVED = ("0025", "0070")
Geometry = Literal["shape", "spacing", "full"]


def find_pancreas(raw: Path, prefix: str) -> dict[str, RawCase]:
    """``{prefix}NNNN`` -> (DICOM folder ``PANCREAS_NNNN``, ``labelNNNN.nii.gz``) for every patient folder found."""
    folders = {m.group(1): p for p in sorted(raw.rglob("PANCREAS_*")) if p.is_dir()
               and (m := re.fullmatch(r"PANCREAS_(\d{4})", p.name))}
    labels = {m.group(1): p for p in sorted(raw.rglob("label*.nii.gz"))
              if (m := re.fullmatch(r"label(\d{4})\.nii\.gz", p.name))}
    label_dir = next(iter(labels.values())).parent if labels else raw / "TCIA_pancreas_labels-02-05-2017"
    return {f"{prefix}{n}": RawCase(f"{prefix}{n}", folder, labels.get(n, label_dir / f"label{n}.nii.gz"))
            for n, folder in folders.items()}


def read_pair(case: RawCase, slice_order: str, geometry: Geometry) -> tuple[Volume, Volume, int]:
    """DICOM volume (HU, float32), label volume (checked to be {0, 1} with foreground) and the slice count.

    ``geometry``: ``shape`` compares only the array shapes, ``spacing`` also the voxel sizes, ``full`` also
    origin and axis directions."""
    image, files = read_dicom_series(case.image, slice_order)
    label = read_volume(case.label)
    try:
        check_same_geometry(image, label, check_spacing=geometry != "shape", check_origin=geometry == "full")
    except DataError as exc:
        raise DataError(f"{exc} [option geometry_check={geometry}]") from None
    check_label_values(label, {0, 1})
    return image.with_array(image.array.astype(np.float32)), label.with_array(label.array.astype(np.uint8)), len(files)


@dataclass(frozen=True)
class McnetOptions:
    """``split``: ``official`` (62 / 20, needs the two patients TCIA removed) or ``tcia80`` (the
    ``pancreas_mcnet_80`` fallback without image0025 and image0070); ``slice_order``: ``instance`` (notebook)
    or ``name``; ``geometry_check``: see :func:`read_pair`; ``interpolation``: image resampling (``bspline``
    as the notebook, or ``linear``); ``window``: HU range scaled to [0, 1]; ``margin`` and ``target``: the X/Y
    crop rule (:func:`steps.xy_crop`)."""

    split: Literal["official", "tcia80"] = field(default="official", metadata=SPLIT)
    slice_order: Literal["instance", "name"] = "instance"
    geometry_check: Geometry = "spacing"
    interpolation: Literal["bspline", "linear"] = "bspline"
    window: tuple[float, float] = (-125.0, 275.0)
    margin: int = 25
    target: int = 96

    def __post_init__(self) -> None:
        check_range("window", *self.window)
        require_nonnegative(margin=self.margin, target=self.target)


class PancreasMcnet(Recipe):
    """MC-Net+ protocol: geometry of the label NIfTI, 1 mm resampling (image B-spline, label nearest; size
    floor(size * spacing), spacing exactly 1 mm where the notebook keeps size * spacing / new size), window
    [-125, 275] -> [0, 1], X/Y crop (margin 25, target 96, half-open), z-score of the crop. Output
    ``Pancreas_h5/imageNNNN_norm.h5``."""

    name, layout, Options = "pancreas_mcnet", "pancreas_mcnet", McnetOptions

    def discover(self, raw: Path, options: McnetOptions) -> dict[str, RawCase]:
        return find_pancreas(raw, "image")

    def lists(self, found: dict[str, RawCase], options: McnetOptions) -> dict[str, list[str]]:
        drop = {f"image{n}" for n in REMOVED} if options.split == "tcia80" else set()
        return {name: [i for i in packaged_list(f"pancreas_mcnet_{name}") if i not in drop]
                for name in ("train.list", "test.list")}

    def split_name(self, options: McnetOptions) -> str:
        return "pancreas_mcnet_80" if options.split == "tcia80" else self.name

    def missing_hint(self, missing: list[str], options: McnetOptions) -> str:
        if options.split == "official" and set(missing) <= {f"image{n}" for n in REMOVED}:
            return (". TCIA removed these duplicated patients from the current download; ask the MC-Net+ author "
                    "for them (ycwu1997/MC-Net issue #6) or use the pancreas_mcnet_80 fallback: --set split=tcia80")
        return ""

    def process(self, case: RawCase, options: McnetOptions) -> Prepared:
        image, label, n_slices = read_pair(case, options.slice_order, options.geometry_check)
        info = {"source": volume_info(image), "dicom_slices": n_slices, "dicom_spacing": list(image.spacing)}
        image = Volume(image.array, label.spacing, label.origin, label.direction, image.source)
        image = steps.resample(image, (1.0, 1.0, 1.0), options.interpolation)
        label = steps.resample(label, (1.0, 1.0, 1.0), "nearest")
        windowed = steps.window(image.array, *options.window)
        box = steps.xy_crop(label.array, options.target, [(options.margin, options.margin)] * 2,
                            f"{case.label} (after resampling)")
        return Prepared(steps.zscore(box.apply(windowed), str(case.image)), box.apply(label.array),
                        (1.0, 1.0, 1.0), box, info)


@dataclass(frozen=True)
class CoranetOptions:
    """``true_z_spacing``: false (official quirk: the in-plane spacing is assumed on all three axes, so Z is
    rescaled by 1 / in-plane spacing instead of by the slice distance) or true; ``slice_order``: ``name``
    (the script sorts file names) or ``instance``; ``geometry_check``: see :func:`read_pair`; ``clip``: HU
    range before per-volume min-max to [0, 1]; ``margin`` and ``minimum``: :func:`steps.bbox_crop` with padding."""

    true_z_spacing: bool = False
    slice_order: Literal["instance", "name"] = "name"
    geometry_check: Geometry = "spacing"
    clip: tuple[float, float] = (-125.0, 275.0)
    margin: int = 25
    minimum: int = 96

    def __post_init__(self) -> None:
        check_range("clip", *self.clip)
        require_nonnegative(margin=self.margin, minimum=self.minimum)


class PancreasCoranet(Recipe):
    """CoraNet protocol (protocols.md section 4): DICOM geometry (in-plane spacing s on all axes unless
    ``true_z_spacing``), resample to 1 mm (image linear, label nearest), clip [-125, 275], min-max to [0, 1]
    over the whole volume, 3-D label box + 25 with a 96-voxel minimum (zero padding). Output ``data/dataNNNN.h5``
    with the ``spacing`` attribute set to the true physical voxel size ((1, 1, slice distance / s) mm with
    the quirk)."""

    name, layout, Options = "pancreas_coranet", "pancreas_coranet", CoranetOptions

    def discover(self, raw: Path, options: CoranetOptions) -> dict[str, RawCase]:
        return find_pancreas(raw, "data")

    def lists(self, found: dict[str, RawCase], options: CoranetOptions) -> dict[str, list[str]]:
        return {name: packaged_list(f"pancreas_coranet_{name}") for name in ("train_lab.txt", "train_unlab.txt",
                                                                           "test.txt")}

    def process(self, case: RawCase, options: CoranetOptions) -> Prepared:
        image, label, n_slices = read_pair(case, options.slice_order, options.geometry_check)
        info = {"source": volume_info(image), "dicom_slices": n_slices}
        s = image.spacing[1]
        assumed = image.spacing if options.true_z_spacing else (s, s, s)
        info["assumed_spacing"] = list(assumed)
        grid = {"origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}
        image = steps.resample(Volume(image.array, assumed, **grid, source=image.source), (1.0, 1.0, 1.0), "linear")
        label = steps.resample(Volume(label.array, assumed, **grid, source=label.source), (1.0, 1.0, 1.0), "nearest")
        scaled = steps.minmax(steps.clip(image.array, *options.clip), str(case.image))
        box = steps.bbox_crop(label.array, options.margin, options.minimum, True, f"{case.label} (after resampling)")
        spacing = (1.0, 1.0, 1.0) if options.true_z_spacing else (1.0, 1.0, float(info["source"]["spacing"][2] / s))
        info["physical_spacing"] = list(spacing)
        return Prepared(box.apply(scaled), box.apply(label.array), spacing, box, info)
