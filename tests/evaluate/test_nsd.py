"""NSD (surface Dice) of case_metrics on hand-computed cases: plates, spheres, shifts and empty masks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.ndimage import binary_erosion, gaussian_filter, generate_binary_structure
from scipy.spatial import cKDTree

from benchmarks.config import config_hash, load_config
from benchmarks.config.dataset import DATASETS_DIR, load_dataset
from benchmarks.errors import ConfigError
from benchmarks.evaluate.metrics import case_metrics

SHAPE = (14, 12, 12)


def _plate(x: int, ys: slice = slice(2, 8), zs: slice = slice(2, 8)) -> np.ndarray:
    """A one-voxel-thick plate at ``x``: every voxel is a surface voxel."""
    mask = np.zeros(SHAPE, bool)
    mask[x, ys, zs] = True
    return mask


def _sphere(radius: float, shape: tuple[int, int, int] = (32, 32, 32)) -> np.ndarray:
    grid = np.indices(shape) - (np.array(shape) // 2)[:, None, None, None]
    return (grid**2).sum(0) <= radius**2


@pytest.mark.parametrize("shift", [1, 2, 4])
def test_shifted_plate(shift: int) -> None:
    """Every surface voxel is exactly ``shift`` voxels (``shift`` * 0.5 mm along X) from the other surface."""
    gt, pred = _plate(3), _plate(3 + shift)
    spacing = (0.5, 1.0, 1.0)
    assert case_metrics(pred, gt, spacing, nsd_tolerance=0.5 * shift)["nsd"] == 100.0
    assert case_metrics(pred, gt, spacing, nsd_tolerance=0.5 * shift - 0.01)["nsd"] == 0.0
    assert case_metrics(pred, gt, nsd_tolerance=shift)["nsd"] == 100.0  # no spacing: voxels
    assert case_metrics(pred, gt, nsd_tolerance=shift - 0.01)["nsd"] == 0.0


def test_half_shifted_plate() -> None:
    """Prediction: rows y 2-4 of the plate in place, rows y 5-7 moved 6 voxels along X. At tau = 1 voxel:
    18 of 36 predicted voxels (distance 0; the moved ones are 6 away) and 24 of 36 ground-truth voxels
    (rows 2-4 at 0, row 5 at 1 from row 4; rows 6, 7 at 2 and 3): NSD = 42 / 72."""
    gt = _plate(3)
    pred = _plate(3, ys=slice(2, 5)) | _plate(9, ys=slice(5, 8))
    assert case_metrics(pred, gt, nsd_tolerance=1.0)["nsd"] == pytest.approx(100 * 42 / 72)
    assert case_metrics(pred, gt, nsd_tolerance=3.0)["nsd"] == pytest.approx(100 * (18 + 36) / 72)
    assert case_metrics(pred, gt, nsd_tolerance=6.0)["nsd"] == 100.0


def test_spheres() -> None:
    sphere = _sphere(8)
    assert case_metrics(sphere, sphere, (1.0, 1.0, 1.0), nsd_tolerance=0.0)["nsd"] == 100.0
    bigger = _sphere(11)  # surfaces 2-4 voxels apart, disjoint
    assert case_metrics(bigger, sphere, (1.0, 1.0, 1.0), nsd_tolerance=0.0)["nsd"] == 0.0
    assert case_metrics(bigger, sphere, (1.0, 1.0, 1.0), nsd_tolerance=5.0)["nsd"] == 100.0
    assert 0.0 < case_metrics(bigger, sphere, (1.0, 1.0, 1.0), nsd_tolerance=3.0)["nsd"] < 100.0
    # a sphere moved by 10 voxels: the NSD falls as the tolerance shrinks and is 100 at tau = 10
    moved = np.roll(sphere, 10, axis=0)
    scores = [case_metrics(moved, sphere, nsd_tolerance=t)["nsd"] for t in (1.0, 4.0, 10.0)]
    assert scores[0] < scores[1] < scores[2] == 100.0


def test_matches_brute_force() -> None:
    """Random blobs, anisotropic spacing: NSD from every pair of surface voxels (k-d tree), not the EDT."""
    rng = np.random.default_rng(3)
    cross = generate_binary_structure(3, 1)
    spacing = np.array([0.7, 1.3, 2.5])
    for _ in range(5):
        gt = gaussian_filter(rng.standard_normal((18, 16, 12)), 2.0) > 0.05
        pred = gaussian_filter(rng.standard_normal((18, 16, 12)), 1.5) > 0.1
        surfaces = [np.argwhere(m ^ binary_erosion(m, cross, border_value=0)) * spacing for m in (pred, gt)]
        to_gt, _ = cKDTree(surfaces[1]).query(surfaces[0])
        to_pred, _ = cKDTree(surfaces[0]).query(surfaces[1])
        for tau in (0.0, 1.25, 2.05, 4.1):  # no tie with a lattice distance
            expected = 100 * ((to_gt <= tau).sum() + (to_pred <= tau).sum()) / (len(to_gt) + len(to_pred))
            assert case_metrics(pred, gt, tuple(spacing), nsd_tolerance=tau)["nsd"] == pytest.approx(expected)


@pytest.mark.parametrize("policy", ["penalty", "official_zero", "nan"])
def test_empty_masks(policy: str) -> None:
    """NSD is an overlap score: 0 when one mask is empty, 100 when both are, under every empty policy."""
    empty, gt = np.zeros(SHAPE, bool), _plate(3)
    assert case_metrics(empty, gt, (1.0, 1.0, 1.0), policy, nsd_tolerance=2.0)["nsd"] == 0.0
    assert case_metrics(gt, empty, (1.0, 1.0, 1.0), policy, nsd_tolerance=2.0)["nsd"] == 0.0
    assert case_metrics(empty, empty, (1.0, 1.0, 1.0), policy, nsd_tolerance=2.0)["nsd"] == 100.0
    assert "nsd" not in case_metrics(empty, gt, empty_policy=policy)


def test_bad_tolerance_and_protocol_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NSD tolerance"):
        case_metrics(_plate(3), _plate(3), nsd_tolerance=-1.0)
    tolerance = {name: load_dataset(name).nsd_tolerance_mm for name in ("la", "pancreas_mcnet", "lung")}
    assert tolerance == {"la": 2.0, "pancreas_mcnet": 3.0, "lung": 2.0}
    data = yaml.safe_load((DATASETS_DIR / "synthetic.yaml").read_text())
    path = tmp_path / "dataset.yaml"
    for value in (-1.0, "wide"):
        path.write_text(yaml.safe_dump({**data, "nsd_tolerance_mm": value}))
        with pytest.raises(ConfigError, match=r"dataset\.yaml: invalid value .* for 'nsd_tolerance_mm'"):
            load_dataset(str(path))
    hashes = []
    for value in (1.0, 5.0, None):  # scoring only: no part of the run's configuration
        path.write_text(yaml.safe_dump({**data, "nsd_tolerance_mm": value}))
        os.utime(path, ns=(len(hashes), len(hashes)))
        assert load_dataset(str(path)).nsd_tolerance_mm == value
        hashes.append(config_hash(load_config({"dataset": str(path)})[0]))
    assert len(set(hashes)) == 1
