"""Largest connected component with 26-connectivity."""

from __future__ import annotations

import numpy as np

from benchmarks.evaluate.postprocess import largest_connected_component


def test_keeps_largest_with_diagonal_neighbours() -> None:
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[2, 2, 2] = 1  # one component through corners only
    mask[6, 6, 6] = mask[6, 6, 7] = 1
    expected = np.zeros_like(mask, dtype=bool)
    expected[0, 0, 0] = expected[1, 1, 1] = expected[2, 2, 2] = True
    np.testing.assert_array_equal(largest_connected_component(mask), expected)


def test_tie_goes_to_lowest_label() -> None:
    mask = np.zeros((6, 6, 6), bool)
    mask[5, 5, 4:] = True
    mask[0, 0, :2] = True
    out = largest_connected_component(mask)
    assert out[0, 0, :2].all() and out.sum() == 2


def test_empty_and_single_component() -> None:
    empty = np.zeros((4, 4, 4), bool)
    assert not largest_connected_component(empty).any()
    single = np.zeros((4, 4, 4), bool)
    single[1:3, 1:3, 1:3] = True
    out = largest_connected_component(single)
    np.testing.assert_array_equal(out, single)
    assert out is not single
