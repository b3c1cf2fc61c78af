"""Helpers of the data-layer tests: tiny valid cases and datasets (the LA fixture is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.data.cases import write_case
from benchmarks.data.layouts import write_id_list


def _blob_case(shape=(12, 10, 8), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A small valid (image float32, label uint8) pair with some foreground."""
    g = np.random.default_rng(seed)
    image = g.standard_normal(shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[2:6, 3:7, 2:5] = 1
    return image, label


def _make_prepared(root: Path, train: list[str], test: list[str], shape=(12, 10, 8)) -> Path:
    """A valid ``prepared``-layout dataset with the given lists."""
    for i, case_id in enumerate(dict.fromkeys([*train, *test])):
        write_case(root / "cases" / f"{case_id}.h5", *_blob_case(shape, seed=i))
    write_id_list(root / "train.list", train)
    write_id_list(root / "test.list", test)
    return root


@pytest.fixture
def blob_case():
    """``blob_case(shape=(12, 10, 8), seed=0) -> (image, label)``."""
    return _blob_case


@pytest.fixture
def make_prepared():
    """``make_prepared(root, train_ids, test_ids, shape=(12, 10, 8)) -> root``."""
    return _make_prepared
