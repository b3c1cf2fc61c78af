"""Protocol steps on (X, Y, Z) arrays: clipping, resampling, cropping around the label, normalisation.

Crop boxes are half-open voxel ranges ``[lo, hi)`` per axis of the array they are cut from, followed by
zero padding ``(before, after)`` per axis where a rule pads (CoraNet's 96-voxel minimum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from benchmarks.errors import DataError
from benchmarks.prepare.readers import Volume

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


@dataclass(frozen=True)
class Box:
    """Crop ``[lo, hi)`` per axis (voxels of the uncropped array), then pad ``before``/``after`` per axis."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]
    before: tuple[int, int, int] = (0, 0, 0)
    after: tuple[int, int, int] = (0, 0, 0)

    def apply(self, array: np.ndarray, fill: float = 0) -> np.ndarray:
        """The cropped and padded copy of ``array`` (X, Y, Z)."""
        cut = array[tuple(slice(lo, hi) for lo, hi in zip(self.lo, self.hi, strict=True))]
        if any(self.before) or any(self.after):
            cut = np.pad(cut, list(zip(self.before, self.after, strict=True)), constant_values=fill)
        return np.ascontiguousarray(cut)

    def as_dict(self) -> dict[str, list[int]]:
        return {"lo": list(self.lo), "hi": list(self.hi), "pad_before": list(self.before),
                "pad_after": list(self.after)}


def clip(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Intensities clipped to [lo, hi] (HU for CT), as float32."""
    return np.clip(array.astype(np.float32, copy=False), lo, hi)


def window(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and scale linearly to [0, 1] (MC-Net+: WL 75 / WW 400 is [-125, 275])."""
    return (clip(array, lo, hi) - np.float32(lo)) / np.float32(hi - lo)


def zscore(array: np.ndarray, where: str) -> np.ndarray:
    """(array - mean) / std over the whole array; DataError if the array is constant."""
    array = array.astype(np.float32, copy=False)
    mean, std = float(array.mean(dtype=np.float64)), float(array.std(dtype=np.float64))
    if not std > 0:
        raise DataError(f"{where}: image is constant ({mean}); cannot z-score it")
    return ((array - mean) / std).astype(np.float32)


def minmax(array: np.ndarray, where: str) -> np.ndarray:
    """Scale to [0, 1] by the array's own minimum and maximum; DataError if the array is constant."""
    array = array.astype(np.float32, copy=False)
    lo, hi = float(array.min()), float(array.max())
    if not hi > lo:
        raise DataError(f"{where}: image is constant ({lo}); cannot min-max normalise it")
    return ((array - lo) / (hi - lo)).astype(np.float32)


def resample(volume: Volume, spacing: Sequence[float], interpolator: str) -> Volume:
    """Resample onto a grid of ``spacing`` mm with the same origin and direction.

    New size per axis = floor(size * old spacing / new spacing) (MC-Net+ notebook); the output grid keeps
    voxel (0, 0, 0) at the input's origin. ``interpolator``: ``linear``, ``bspline`` or ``nearest``.
    Images come back as float32, labels (nearest) keep their dtype.
    """
    size = [int(np.floor(n * s / t + 1e-6)) for n, s, t in zip(volume.shape, volume.spacing, spacing, strict=True)]
    if min(size) < 1:
        raise DataError(f"{volume.source}: resampling {volume.shape} voxels of {volume.spacing} mm to "
                        f"{tuple(spacing)} mm leaves an empty axis")
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in volume.spacing))
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction.ravel()))
    if interpolator != "nearest":
        image = sitk.Cast(image, sitk.sitkFloat32)
    out = sitk.Resample(image, size, sitk.Transform(), INTERPOLATORS[interpolator], volume.origin,
                        tuple(float(s) for s in spacing), tuple(volume.direction.ravel()), 0.0,
                        image.GetPixelID())
    array = np.ascontiguousarray(sitk.GetArrayFromImage(out).transpose(2, 1, 0))
    return Volume(array, tuple(float(s) for s in spacing), volume.origin, volume.direction,  # type: ignore[arg-type]
                  volume.source)


def label_bbox(label: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive (min, max) foreground indices per axis, each (3,); DataError on an empty label."""
    nz = np.nonzero(label)
    if nz[0].size == 0:
        raise DataError(f"{where}: label is empty (no foreground voxel)")
    return np.array([a.min() for a in nz]), np.array([a.max() for a in nz])


def xy_crop(label: np.ndarray, target: int, margins: Sequence[tuple[int, int]], where: str) -> Box:
    """UA-MT / MC-Net+ rule on X and Y; Z is kept whole.

    Per axis with bbox (lo, hi) (inclusive max), p = max(target - (hi - lo), 0) // 2 and margins (m1, m2):
    keep [max(lo - m1 - p, 0), min(hi + m2 + p, S)); the voxel at hi + m2 + p is excluded (official slicing).
    """
    lo, hi = label_bbox(label, where)
    start, stop = [0, 0, 0], list(label.shape)
    for axis in (0, 1):
        pad = max(target - int(hi[axis] - lo[axis]), 0) // 2
        m1, m2 = margins[axis]
        start[axis] = max(int(lo[axis]) - m1 - pad, 0)
        stop[axis] = min(int(hi[axis]) + m2 + pad, label.shape[axis])
    return Box(tuple(start), tuple(stop))  # type: ignore[arg-type]


def bbox_crop(label: np.ndarray, margin: int, minimum: int, pad: bool, where: str) -> Box:
    """3-D rule (CoraNet, lung): the label box [lo, hi + 1) grown by ``margin`` on both sides and clamped to
    the volume, then widened symmetrically (floor(extra / 2) before, the rest after, shifted back inside the
    volume) to at least ``minimum`` voxels where the axis allows. An axis shorter than ``minimum`` is kept
    whole and, with ``pad``, zero-padded to ``minimum`` (floor before, rest after)."""
    lo, hi = label_bbox(label, where)
    start, stop, before, after = [], [], [], []
    for axis, size in enumerate(label.shape):
        a, b = max(int(lo[axis]) - margin, 0), min(int(hi[axis]) + 1 + margin, size)
        if b - a < minimum:
            if size <= minimum:
                a, b = 0, size
            else:
                a -= (minimum - (b - a)) // 2
                a = min(max(a, 0), size - minimum)
                b = a + minimum
        short = max(minimum - (b - a), 0) if pad else 0
        start.append(a), stop.append(b), before.append(short // 2), after.append(short - short // 2)
    return Box(tuple(start), tuple(stop), tuple(before), tuple(after))  # type: ignore[arg-type]


def stats(array: np.ndarray) -> dict[str, float]:
    """mean, std, min, max of an array (float64 accumulation)."""
    return {"mean": float(array.mean(dtype=np.float64)), "std": float(array.std(dtype=np.float64)),
            "min": float(array.min()), "max": float(array.max())}
