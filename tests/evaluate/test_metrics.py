"""case_metrics against medpy, empty-mask policies and summarize."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from medpy.metric import binary
from scipy.ndimage import gaussian_filter

from benchmarks.errors import ConfigError, DataError
from benchmarks.evaluate.metrics import case_metrics, summarize

SPACINGS = [(1.0, 1.0, 1.0), (0.625, 0.625, 0.625), (0.7, 1.3, 2.5)]


def _blob(rng: np.random.Generator, shape: tuple[int, int, int], sigma: float, level: float) -> np.ndarray:
    return gaussian_filter(rng.standard_normal(shape), sigma) > level


def _random_pairs(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Overlapping, disjoint, border-touching, one-voxel and small-in-large-volume mask pairs."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        shape = tuple(int(s) for s in rng.integers(6, 22, size=3))
        gt = _blob(rng, shape, 2.0, 0.05)
        pred = gt ^ (rng.random(shape) < 0.05) if i % 3 == 0 else _blob(rng, shape, 1.5, 0.1)
        pairs.append((pred, gt))
    full = np.ones((5, 6, 7), bool)
    pairs.append((full, full))  # every voxel on the volume border
    corner = np.zeros((9, 8, 7), bool)
    corner[:3, :4, -2:] = True
    pairs.append((corner, np.roll(corner, 2, axis=1)))
    one, far = np.zeros((30, 25, 20), bool), np.zeros((30, 25, 20), bool)
    one[3, 4, 5] = True
    far[20:26, 15:19, 10:17] = True
    pairs.append((one, far))
    pairs.append((far, one))
    small = np.zeros((40, 36, 32), bool)
    small[10:18, 12:20, 9:15] = _blob(rng, (8, 8, 6), 1.0, 0.0)
    small[10, 12, 9] = True
    pairs.append((small, np.roll(small, (1, -1, 2), axis=(0, 1, 2))))
    return [(p, g) for p, g in pairs if p.any() and g.any()]


@pytest.mark.parametrize("pair", _random_pairs(30))
def test_matches_medpy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, gt = pair
    for spacing in SPACINGS:
        got = case_metrics(pred.astype(np.uint8), gt.astype(np.uint8), spacing)
        expected = {
            "dice": 100 * binary.dc(pred, gt),
            "jaccard": 100 * binary.jc(pred, gt),
            "asd": binary.asd(pred, gt),
            "hd95": binary.hd95(pred, gt),
            "asd_mm": binary.asd(pred, gt, voxelspacing=spacing),
            "hd95_mm": binary.hd95(pred, gt, voxelspacing=spacing),
        }
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-12), (key, spacing)
        assert got["empty_pred"] == 0


def test_without_spacing_has_no_mm_keys() -> None:
    pred, gt = _random_pairs(1)[0]
    assert list(case_metrics(pred, gt)) == ["dice", "jaccard", "asd", "hd95", "empty_pred"]


def test_empty_prediction_policies() -> None:
    pred, gt = np.zeros((3, 4, 12), bool), np.zeros((3, 4, 12), bool)
    gt[1, 1, 1] = True
    spacing = (2.0, 1.0, 0.5)
    diag, diag_mm = 13.0, math.sqrt(6**2 + 4**2 + 6**2)
    penalty = case_metrics(pred, gt, spacing)
    assert penalty == {"dice": 0.0, "jaccard": 0.0, "asd": diag, "hd95": diag,
                       "asd_mm": pytest.approx(diag_mm), "hd95_mm": pytest.approx(diag_mm), "empty_pred": 1}
    zero = case_metrics(pred, gt, spacing, "official_zero")
    assert [zero[k] for k in ("dice", "jaccard", "asd", "hd95", "asd_mm", "hd95_mm")] == [0.0] * 6
    nan = case_metrics(pred, gt, spacing, "nan")
    assert nan["dice"] == 0.0 and all(math.isnan(nan[k]) for k in ("asd", "hd95", "asd_mm", "hd95_mm"))


@pytest.mark.parametrize("policy", ["penalty", "official_zero", "nan"])
def test_empty_ground_truth(policy: str) -> None:
    empty = np.zeros((3, 4, 12), bool)
    both = case_metrics(empty, empty, empty_policy=policy)
    assert both == {"dice": 100.0, "jaccard": 100.0, "asd": 0.0, "hd95": 0.0, "empty_pred": 1}
    pred = empty.copy()
    pred[0, 0, 0] = True
    only_gt = case_metrics(pred, empty, empty_policy=policy)
    assert only_gt == {"dice": 0.0, "jaccard": 0.0, "asd": 13.0, "hd95": 13.0, "empty_pred": 0}


def test_bad_input() -> None:
    mask = np.ones((2, 2, 2), bool)
    with pytest.raises(ConfigError, match="empty_policy"):
        case_metrics(mask, mask, empty_policy="zero")
    with pytest.raises(DataError):
        case_metrics(mask, np.ones((2, 2, 3), bool))
    with pytest.raises(DataError):
        case_metrics(mask, mask, spacing=(1.0, 0.0, 1.0))


def test_summarize() -> None:
    frame = pd.DataFrame({
        "case": ["a", "b", "c"],
        "dice": [90.0, 80.0, 0.0],
        "jaccard": [81.0, 64.0, 0.0],
        "asd": [1.0, 3.0, math.nan],
        "hd95": [2.0, 4.0, math.nan],
        "empty_pred": [0, 0, 1],
    })
    summary = summarize(frame)
    assert summary["n_cases"] == 3 and summary["n_empty"] == 1
    assert summary["dice_mean"] == pytest.approx(170 / 3)
    assert summary["dice_std"] == pytest.approx(np.std([90, 80, 0], ddof=1))
    assert summary["asd_mean"] == 2.0 and summary["asd_std"] == pytest.approx(math.sqrt(2))
    assert "asd_mm_mean" not in summary
    assert summarize(frame.iloc[:1])["dice_std"] is None
