"""Crop rules, normalisation and resampling geometry on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.errors import DataError
from benchmarks.prepare import steps
from benchmarks.prepare.readers import Volume


def _label(shape, box) -> np.ndarray:
    label = np.zeros(shape, np.uint8)
    label[tuple(slice(lo, hi + 1) for lo, hi in box)] = 1
    return label


def test_xy_crop_widens_small_boxes_and_excludes_the_end_voxel() -> None:
    label = _label((40, 30, 6), ((10, 14), (3, 20), (2, 3)))
    box = steps.xy_crop(label, 12, [(2, 3), (4, 5)], "t")
    # x: extent 4, p = (12 - 4) // 2 = 4 -> [10 - 2 - 4, 14 + 3 + 4) ; y: extent 17 >= 12, p = 0, clamped at 0
    assert box.lo == (4, 0, 0) and box.hi == (21, 25, 6)
    assert box.apply(label).sum() == label.sum()


def test_bbox_crop_margin_widening_shift_and_padding() -> None:
    label = _label((50, 30, 8), ((1, 4), (10, 12), (3, 4)))
    box = steps.bbox_crop(label, 2, 16, pad=True, where="t")
    # x: [0, 7) widened to 16 then shifted inside; y: [8, 15) -> 7 short of 16: 4 before, 5 after;
    # z: the axis (8) is shorter than 16: kept whole and padded 4 + 4
    assert (box.lo, box.hi) == ((0, 4, 0), (16, 20, 8))
    assert (box.before, box.after) == ((0, 0, 4), (0, 0, 4))
    out = box.apply(label)
    assert out.shape == (16, 16, 16) and out.sum() == label.sum()
    nopad = steps.bbox_crop(label, 2, 16, pad=False, where="t")
    assert nopad.apply(label).shape == (16, 16, 8)


def test_bbox_crop_rejects_an_empty_label() -> None:
    with pytest.raises(DataError, match="label is empty"):
        steps.bbox_crop(np.zeros((4, 4, 4), np.uint8), 1, 2, False, "case.nii.gz")


def test_window_zscore_minmax() -> None:
    x = np.array([-400.0, -125.0, 75.0, 275.0, 900.0], np.float32).reshape(5, 1, 1)
    np.testing.assert_allclose(steps.window(x, -125, 275).ravel(), [0, 0, 0.5, 1, 1])
    z = steps.zscore(np.arange(24, dtype=np.float32).reshape(2, 3, 4), "t")
    assert abs(z.mean()) < 1e-6 and abs(z.std() - 1) < 1e-6
    m = steps.minmax(x, "t")
    assert m.min() == 0 and m.max() == 1
    with pytest.raises(DataError, match="constant"):
        steps.zscore(np.ones((2, 2, 2), np.float32), "flat.nii.gz")


def test_resample_keeps_physical_positions_with_a_flipped_axis() -> None:
    """Voxel k of the source and voxel spacing * k of the 1 mm grid are the same physical point."""
    direction = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    label = _label((16, 12, 8), ((8, 8), (4, 4), (2, 2)))
    volume = Volume(label, (0.75, 1.5, 2.5), (3.0, -2.0, 7.0), direction, "t")
    out = steps.resample(volume, (1.0, 1.0, 1.0), "nearest")
    assert out.shape == (12, 18, 20) and out.spacing == (1.0, 1.0, 1.0)
    point = volume.physical_point(np.array([8, 4, 2]))
    index = np.linalg.solve(out.direction, point - np.asarray(out.origin))  # / 1 mm
    np.testing.assert_allclose(index, [6, 6, 5])
    assert out.array[6, 6, 5] == 1 and out.array.sum() >= 1
