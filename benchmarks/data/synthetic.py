"""Procedurally generated stand-in dataset in the ``prepared`` layout (no download needed).

Each case is an organ-like target (a union of randomly rotated ellipsoid lobes, warped by a smooth
random displacement field, with a thin tubular appendage) among label-0 distractor blobs of
similar intensity, some separated from the target only by a thin background gap. Each case draws one of
six appearance styles (bright or dark target; solid, rim-enhancing or speckled texture), so that a few
labeled cases do not cover the distribution. Target contrast varies per
case and overlaps the background through smooth tissue texture, a multiplicative bias field,
partial-volume blur and Gaussian noise; the image is z-scored per volume, like LA. Intensity
alone cannot separate target from distractors: shape and context are needed.

Everything is a function of (seed, case index): case ``synth_007`` is the same whatever the
number of cases requested, and the same seed gives byte-identical arrays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchmarks.data.cases import write_case
from benchmarks.data.layouts import get_layout, write_id_list
from benchmarks.data.seeding import rng

GENERATOR_VERSION = 2
SPACING = (1.0, 1.0, 1.0)
#: Appearance styles (target polarity, target texture), one drawn per case, like scanners or protocols
#: that differ between cases: a few labeled cases cannot cover them all.
STYLES = tuple((polarity, texture) for polarity in (1.0, -1.0) for texture in ("solid", "rim", "speckle"))


def _upsample(field: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Separable linear interpolation of ``field`` onto ``shape`` (end points aligned)."""
    for axis, n in enumerate(shape):
        c = field.shape[axis]
        pos = np.linspace(0.0, c - 1.0, n, dtype=np.float32)
        lo = np.minimum(pos.astype(np.intp), c - 2)
        w = (pos - lo).reshape([-1 if a == axis else 1 for a in range(field.ndim)])
        field = np.take(field, lo, axis=axis) * (1 - w) + np.take(field, lo + 1, axis=axis) * w
    return field


def _smooth_noise(g: np.random.Generator, shape: Sequence[int], cell: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise of ``shape`` with features about ``cell`` voxels wide:
    white noise on a coarse grid, Gaussian-smoothed, linearly up-sampled. float32."""
    coarse = tuple(max(int(np.ceil(s / cell)) + 2, 3) for s in shape)
    field = ndimage.gaussian_filter(g.standard_normal(coarse), 1.0, mode="wrap").astype(np.float32)
    field = _upsample(field, shape)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def _rotation(g: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(g.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _add_ellipsoid(
    mask: np.ndarray,
    warped: list[np.ndarray],
    center: np.ndarray,
    radii: np.ndarray,
    reach: float,
    g: np.random.Generator,
) -> None:
    """Set to True the voxels whose warped coordinates fall inside a randomly rotated ellipsoid.
    Only a box of half-width max(radii) + ``reach`` (the largest warp) around ``center`` is tested."""
    rot = _rotation(g)
    half = float(radii.max()) + reach + 1
    lo = np.clip(np.floor(center - half).astype(int), 0, mask.shape)
    hi = np.clip(np.ceil(center + half).astype(int) + 1, 0, mask.shape)
    if np.any(hi <= lo):
        return
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    d = [w[box] - np.float32(m) for w, m in zip(warped, center)]
    q = np.zeros(d[0].shape, dtype=np.float32)
    for axis in range(3):
        u = d[0] * np.float32(rot[0, axis]) + d[1] * np.float32(rot[1, axis]) + d[2] * np.float32(rot[2, axis])
        q += (u / np.float32(radii[axis])) ** 2
    mask[box] |= q < 1


def _lobed_shape(
    g: np.random.Generator, warped: list[np.ndarray], center: np.ndarray, size: float, n_lobes: int, reach: float
) -> np.ndarray:
    """Boolean union of a main ellipsoid (radii ~``size``) and ``n_lobes`` smaller attached ones."""
    mask = np.zeros(warped[0].shape, dtype=bool)
    _add_ellipsoid(mask, warped, center, size * g.uniform(0.7, 1.3, 3), reach, g)
    for _ in range(n_lobes):
        direction = g.standard_normal(3)
        direction /= np.linalg.norm(direction)
        lobe_center = center + direction * size * g.uniform(0.6, 1.1)
        _add_ellipsoid(mask, warped, lobe_center, size * g.uniform(0.35, 0.75, 3), reach, g)
    return mask


def _tube(g: np.random.Generator, shape: Sequence[int], start: np.ndarray, length: float) -> np.ndarray:
    """Boolean tube of radius 1.2-2.2 voxels along a gently bent curve leaving ``start``."""
    direction = g.standard_normal(3)
    direction /= np.linalg.norm(direction)
    bend = g.standard_normal(3) * 0.3 * length
    t = np.linspace(0.0, 1.0, int(4 * length) + 2)[:, None]
    points = start + t * length * direction + np.sin(np.pi * t) * bend
    idx = np.round(points).astype(int)
    idx = idx[np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)]
    tube = np.zeros(shape, dtype=bool)
    if idx.size == 0:
        return tube
    radius = g.uniform(1.2, 2.2)
    margin = int(np.ceil(radius)) + 1
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    line = np.ones(hi - lo, dtype=bool)
    line[tuple((idx - lo).T)] = False
    tube[box] = ndimage.distance_transform_edt(line) <= radius
    return tube


def _target_pattern(g: np.random.Generator, target: np.ndarray, texture: str) -> np.ndarray:
    """Relative intensity inside the target (about 1 where it is brightest), float32.

    ``solid``: uniform with mild texture; ``rim``: an enhancing wall 1.5-3 voxels thick around a faint
    core; ``speckle``: blotches of two levels.
    """
    shape = target.shape
    if texture == "solid":
        return 1.0 + 0.15 * _smooth_noise(g, shape, 4)
    if texture == "rim":
        depth = ndimage.distance_transform_edt(target)
        return np.where(depth <= g.uniform(1.5, 3.0), 1.0, 0.25).astype(np.float32)
    return np.where(_smooth_noise(g, shape, 2.5) > 0, 1.3, 0.4).astype(np.float32)


def synthesize_case(
    seed: int, index: int, shape: Sequence[int] = (80, 80, 56), shape_jitter: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """One case: image float32 (X, Y, Z), z-scored; label uint8 {0, 1}. X and Y vary by up to
    ±``shape_jitter`` around ``shape``; Z is fixed."""
    g = rng(seed, "synthetic", GENERATOR_VERSION, index)
    dims = (*(round(float(s) * g.uniform(1 - shape_jitter, 1 + shape_jitter)) for s in shape[:2]), int(shape[2]))
    scale = min(dims)

    # Smooth warp of the sampling coordinates (low resolution, then up-sampled), |shift| <= reach.
    amplitude = g.uniform(0.03, 0.07) * scale
    reach = 3 * amplitude
    warped = [
        np.arange(n, dtype=np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
        + np.float32(amplitude) * np.clip(_smooth_noise(g, dims, scale / 4), -3, 3)
        for axis, n in enumerate(dims)
    ]

    # Target: lobed shape near the centre (volumes are cropped around the target, like the protocols).
    center = np.asarray(dims) / 2 + g.uniform(-0.1, 0.1, 3) * np.asarray(dims)
    size = g.uniform(0.18, 0.34) * scale
    target = _lobed_shape(g, warped, center, size, int(g.integers(1, 4)), reach)
    target |= _tube(g, dims, center, g.uniform(0.9, 1.6) * size + size)

    # Distractors: similar intensity, label 0, separated from the target by a 2-3 voxel gap.
    keep_out = ndimage.binary_dilation(target, iterations=int(g.integers(2, 4)))
    distractors = np.zeros(dims, dtype=bool)
    for k in range(int(g.integers(2, 5))):
        d_size = size * g.uniform(0.4, 0.9)
        if k < 2:  # adjacent to the target
            direction = g.standard_normal(3)
            direction /= np.linalg.norm(direction)
            d_center = center + direction * (1.2 * size + 0.8 * d_size)
        else:
            d_center = g.uniform(0.1, 0.9, 3) * np.asarray(dims)
        distractors |= _lobed_shape(g, warped, d_center, d_size, int(g.integers(0, 2)), reach)
    distractors &= ~keep_out

    # Intensities: an appearance style, tissue texture, bias field, blur, noise.
    polarity, texture = STYLES[int(g.integers(len(STYLES)))]
    contrast = polarity * g.uniform(0.6, 1.3)
    image = 1.0 + 0.2 * _smooth_noise(g, dims, scale / 6) + 0.1 * _smooth_noise(g, dims, 3)
    image += target * (contrast * _target_pattern(g, target, texture))
    image += distractors * np.float32(contrast * g.uniform(0.85, 1.15))
    image *= np.exp(g.uniform(0.1, 0.25) * _smooth_noise(g, dims, scale / 2))
    image = ndimage.gaussian_filter(image, g.uniform(0.6, 1.2))
    image += g.uniform(0.08, 0.25) * g.standard_normal(dims, dtype=np.float32)
    image = (image - image.mean()) / image.std()
    return image.astype(np.float32), target.astype(np.uint8)


def generate_synthetic(
    out_dir: str | os.PathLike[str],
    n_train: int = 40,
    n_test: int = 20,
    shape: Sequence[int] = (80, 80, 56),
    seed: int = 0,
    shape_jitter: float = 0.1,
) -> Path:
    """Write ``n_train + n_test`` cases (IDs ``synth_000``...) in the ``prepared`` layout:
    ``cases/<ID>.h5`` (image, label, attribute ``spacing`` = 1 mm), ``train.list`` (first
    ``n_train`` IDs), ``test.list`` (the rest), ``manifest.json``. Returns ``out_dir``."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need n_train >= 1 and n_test >= 1, got {n_train}, {n_test}")
    if len(shape) != 3 or min(shape) < 16 or not 0 <= shape_jitter < 0.5:
        raise ValueError(
            f"need a 3-axis shape with every axis >= 16 and 0 <= shape_jitter < 0.5, got {shape}, {shape_jitter}"
        )
    root = Path(out_dir)
    layout = get_layout("prepared")
    ids = [f"synth_{i:03d}" for i in range(n_train + n_test)]
    cases = {}
    for index, case_id in enumerate(ids):
        image, label = synthesize_case(seed, index, shape, shape_jitter)
        write_case(layout.case_path(root, case_id), image, label, SPACING)
        cases[case_id] = {"shape": list(image.shape), "foreground_fraction": round(float(label.mean()), 6)}
    write_id_list(root / layout.train_lists[0], ids[:n_train])
    write_id_list(root / layout.test_lists[0], ids[n_train:])
    manifest = {
        "generator": "benchmarks.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "shape": list(shape),
        "shape_jitter": shape_jitter,
        "spacing": list(SPACING),
        "cases": cases,
    }
    tmp = root / f".{layout.manifest}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, root / layout.manifest)
    return root
