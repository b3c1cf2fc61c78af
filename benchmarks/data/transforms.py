"""Training transforms of the UA-MT lineage (protocols.md §6), pure NumPy with explicit RNGs.

Arrays are (X, Y, Z). Every function accepts ``label=None`` (unlabeled samples) and returns
C-contiguous arrays; crops never pad or copy the whole volume, only the patch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.errors import ConfigError

Patch = tuple[int, int, int]
Pair = tuple[np.ndarray, np.ndarray | None]


def _check(image: np.ndarray, label: np.ndarray | None) -> None:
    if image.ndim != 3:
        raise ValueError(f"image must be 3-D (X, Y, Z), got shape {image.shape}")
    if label is not None and label.shape != image.shape:
        raise ValueError(f"label shape {label.shape} != image shape {image.shape}")


def as_patch(patch: Sequence[int]) -> Patch:
    """Validate a patch size: three positive ints (voxels along X, Y, Z)."""
    values = tuple(patch)
    if len(values) != 3 or not all(
        isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p > 0 for p in values
    ):
        raise ConfigError(f"patch must be three positive ints (X, Y, Z), got {patch!r}")
    return tuple(int(p) for p in values)  # type: ignore[return-value]


def crop_padding(shape: Sequence[int], patch: Sequence[int]) -> Patch:
    """Zero padding per side of the official RandomCrop/CenterCrop: if ANY axis has s <= p, EVERY
    axis gets max((p - s) // 2 + 3, 0) voxels on both sides; otherwise none."""
    if any(s <= p for s, p in zip(shape, patch)):
        return tuple(max((p - s) // 2 + 3, 0) for s, p in zip(shape, patch))  # type: ignore[return-value]
    return (0, 0, 0)


def _cut(array: np.ndarray, pad: Patch, start: Patch, patch: Patch) -> np.ndarray:
    """The ``patch`` at ``start`` of ``array`` zero-padded by ``pad`` per side, without padding it."""
    if not any(pad):
        window = tuple(slice(o, o + p) for o, p in zip(start, patch))
        return np.ascontiguousarray(array[window])
    out = np.zeros(patch, dtype=array.dtype)
    src, dst = [], []
    for size, q, o, p in zip(array.shape, pad, start, patch):
        lo = o - q  # patch start in unpadded coordinates
        a = max(lo, 0)
        b = max(min(lo + p, size), a)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[tuple(dst)] = array[tuple(src)]
    return out


def rot_flip_views(image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator) -> Pair:
    """:func:`random_rot_flip` returning (non-contiguous) views instead of copies."""
    _check(image, label)
    k = int(rng.integers(0, 4))
    axis = int(rng.integers(0, 2))
    image = np.flip(np.rot90(image, k, axes=(0, 1)), axis=axis)
    if label is not None:
        label = np.flip(np.rot90(label, k, axes=(0, 1)), axis=axis)
    return image, label


def random_rot_flip(image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator) -> Pair:
    """Rotate by k*90 deg in the X-Y plane (k uniform in {0..3}, ``np.rot90`` over axes (0, 1)),
    then flip along axis a uniform in {0, 1}. Z is never touched; X and Y swap for odd k."""
    image, label = rot_flip_views(image, label, rng)
    return np.ascontiguousarray(image), None if label is None else np.ascontiguousarray(label)


def random_crop(image: np.ndarray, label: np.ndarray | None, patch: Sequence[int], rng: np.random.Generator) -> Pair:
    """Official RandomCrop: pad per :func:`crop_padding`, then per axis (X, Y, Z in that order)
    draw the offset uniformly from {0, ..., s' - p - 1} (s' the padded size; the last position is
    never drawn) and cut a ``patch``-sized block."""
    _check(image, label)
    patch = as_patch(patch)
    pad = crop_padding(image.shape, patch)
    start = tuple(int(rng.integers(0, max(s + 2 * q - p, 1))) for s, q, p in zip(image.shape, pad, patch))
    return _cut(image, pad, start, patch), None if label is None else _cut(label, pad, start, patch)  # type: ignore[arg-type]


def center_crop(image: np.ndarray, label: np.ndarray | None, patch: Sequence[int]) -> Pair:
    """Official CenterCrop: pad per :func:`crop_padding`, offset ``int(round((s' - p) / 2))``
    per axis (Python's round: halves go to the even integer)."""
    _check(image, label)
    patch = as_patch(patch)
    pad = crop_padding(image.shape, patch)
    start = tuple(round((s + 2 * q - p) / 2.0) for s, q, p in zip(image.shape, pad, patch))
    return _cut(image, pad, start, patch), None if label is None else _cut(label, pad, start, patch)  # type: ignore[arg-type]
