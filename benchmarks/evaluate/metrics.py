"""Per-case segmentation metrics and their summary (``protocols.md`` section 9).

The overlap and surface metrics equal medpy's ``dc``, ``jc``, ``asd`` and ``hd95`` (connectivity 1):

- surface of a mask A: A XOR its binary erosion by the 6-connected cross (one iteration, zero border);
- ``asd``: mean distance from the prediction surface to the ground-truth surface (directed, medpy ``asd``);
- ``hd95``: 95th percentile (linear interpolation) of both directed surface distance sets pooled;
- ``nsd`` (normalised surface distance, surface Dice, Nikolov et al. 2021): the share of both surfaces' voxels
  that lie within a tolerance of the other surface, (|{p in dP: d(p, dG) <= tau}| + |{g in dG: d(g, dP) <= tau}|)
  / (|dP| + |dG|), in percent, on the same surface voxels and distances (counted per voxel, not weighted by
  surface-element area as DeepMind's ``surface-distance`` package does).

Distances are computed on the bounding box of both masks grown by one voxel (clipped to the volume), which
leaves every surface voxel and every nearest-surface distance unchanged: the erosion only looks one voxel
ahead, the original zero border is kept where the box touches the volume edge, and the exact Euclidean
distance transform depends only on the surface voxels, all of which lie inside the box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from benchmarks.errors import ConfigError, DataError

#: Empty-prediction policies: the suite's default, the official code's quirk, exclusion from the means.
EMPTY_POLICIES = ("penalty", "official_zero", "nan")
#: Metric columns in the suite's order (Dice, Jaccard, ASD, 95HD), voxel units first, then mm; then NSD.
METRICS = ("dice", "jaccard", "asd", "hd95", "asd_mm", "hd95_mm", "nsd")

Spacing = tuple[float, float, float]

_CROSS = generate_binary_structure(3, 1)


def check_empty_policy(policy: str) -> None:
    """Raise :class:`ConfigError` unless ``policy`` is one of :data:`EMPTY_POLICIES`."""
    if policy not in EMPTY_POLICIES:
        raise ConfigError(f"unknown empty_policy {policy!r}; expected one of {', '.join(EMPTY_POLICIES)}")


def case_metrics(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None, empty_policy: str = "penalty",
    nsd_tolerance: float | None = None,
) -> dict[str, float]:
    """Dice, Jaccard (percent), ASD, 95HD and optionally NSD of one binary 3D prediction against its ground truth.

    Args:
        pred, gt: masks of shape (X, Y, Z); any non-zero value is foreground.
        spacing: voxel size in mm along (X, Y, Z). When given, ``asd_mm`` and ``hd95_mm`` are added
            (distance transform with ``sampling=spacing``); when ``None`` they are omitted, never guessed.
        empty_policy: how an empty prediction is scored (see below).
        nsd_tolerance: NSD tolerance tau in mm (in voxels when ``spacing`` is ``None``); ``nsd`` is added when
            given. The dataset protocols set it per organ (``nsd_tolerance_mm`` in ``config/datasets/*.yaml``).

    Returns:
        ``{"dice", "jaccard", "asd", "hd95"[, "asd_mm", "hd95_mm"][, "nsd"], "empty_pred"}``; distances in
        voxels (and mm), NSD in percent; ``empty_pred`` is 1 when ``pred`` has no foreground voxel, else 0.

    Empty masks, with D the volume diagonal sqrt(X^2 + Y^2 + Z^2) in the unit at hand (in mm:
    ``sqrt(sum((S_i * spacing_i)^2))``):

    - prediction empty, ground truth not: Dice = Jaccard = 0 and distances D (``penalty``),
      0 (``official_zero``) or NaN (``nan``, excluded from the means by :func:`summarize`);
    - both empty: Dice = Jaccard = 100, distances 0;
    - ground truth empty, prediction not: Dice = Jaccard = 0, distances D under every policy.

    NSD is an overlap score like Dice: 0 when exactly one mask is empty (under every policy), 100 when both are.
    """
    check_empty_policy(empty_policy)
    if nsd_tolerance is not None and not (math.isfinite(nsd_tolerance) and nsd_tolerance >= 0):
        raise ConfigError(f"invalid NSD tolerance {nsd_tolerance!r}; expected a finite number >= 0 (mm)")
    pred, gt = np.asarray(pred) != 0, np.asarray(gt) != 0
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise DataError(f"prediction {pred.shape} and ground truth {gt.shape} must be 3D of the same shape")
    units = {"": None}
    if spacing is not None:
        units["_mm"] = _check_spacing(spacing)
    nsd_unit = "_mm" if spacing is not None else ""
    pred_any, gt_any = bool(pred.any()), bool(gt.any())

    if pred_any and gt_any:
        inter = np.count_nonzero(pred & gt)
        out = {
            "dice": 100.0 * (2.0 * inter / float(np.count_nonzero(pred) + np.count_nonzero(gt))),
            "jaccard": 100.0 * (inter / float(np.count_nonzero(pred | gt))),
        }
        box = _bounding_box(pred | gt)
        pred_surface, gt_surface = _surface(pred[box]), _surface(gt[box])
        for suffix, sampling in units.items():
            to_gt = _distances(pred_surface, gt_surface, sampling)
            to_pred = _distances(gt_surface, pred_surface, sampling)
            out["asd" + suffix] = float(to_gt.mean())
            out["hd95" + suffix] = float(np.percentile(np.hstack((to_gt, to_pred)), 95))
            if nsd_tolerance is not None and suffix == nsd_unit:
                within = np.count_nonzero(to_gt <= nsd_tolerance) + np.count_nonzero(to_pred <= nsd_tolerance)
                out["nsd"] = 100.0 * within / float(to_gt.size + to_pred.size)
    else:
        both_empty = not (pred_any or gt_any)
        out = {"dice": 100.0 if both_empty else 0.0, "jaccard": 100.0 if both_empty else 0.0}
        for suffix, sampling in units.items():
            if both_empty or (gt_any and empty_policy == "official_zero"):
                distance = 0.0
            elif gt_any and empty_policy == "nan":
                distance = math.nan
            else:
                distance = _diagonal(pred.shape, sampling)
            out["asd" + suffix] = out["hd95" + suffix] = distance
        if nsd_tolerance is not None:
            out["nsd"] = out["dice"]
    out["empty_pred"] = int(not pred_any)
    return out


def summarize(per_case: pd.DataFrame) -> dict[str, float | int | None]:
    """Mean and sample standard deviation (ddof = 1) of every metric column present in ``per_case``.

    NaN values (distances under the ``nan`` policy) are skipped. Returns ``n_cases``, ``n_empty`` (cases
    with an empty prediction) and ``<metric>_mean`` / ``<metric>_std``; a statistic that is undefined
    (the std of one case, the mean of no finite value) is ``None``, so the result is valid JSON.
    """
    summary: dict[str, float | int | None] = {
        "n_cases": len(per_case),
        "n_empty": int(per_case["empty_pred"].sum()),
    }
    for name in METRICS:
        if name in per_case:
            values = per_case[name].astype(float)
            summary[f"{name}_mean"] = _finite_or_none(values.mean())
            summary[f"{name}_std"] = _finite_or_none(values.std(ddof=1))
    return summary


def _check_spacing(spacing: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise DataError(f"spacing must be three positive finite numbers (mm), got {spacing!r}")
    return values


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the box around the foreground of ``mask``, one voxel larger per side, within the volume."""
    box = []
    for axis, size in enumerate(mask.shape):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(hits[0] - 1, 0), min(hits[-1] + 2, size)))
    return tuple(box)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask ^ binary_erosion(mask, structure=_CROSS, iterations=1, border_value=0)


def _distances(source: np.ndarray, target: np.ndarray, sampling: tuple[float, ...] | None) -> np.ndarray:
    """Distance from each ``source`` voxel (C order) to the nearest ``target`` voxel."""
    return distance_transform_edt(~target, sampling=sampling)[source]


def _diagonal(shape: tuple[int, ...], sampling: tuple[float, ...] | None) -> float:
    sampling = sampling or (1.0,) * len(shape)
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, sampling)))


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
