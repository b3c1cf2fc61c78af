"""Shared fixtures: the real LA dataset (skipped when absent) and a tiny synthetic dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.data.synthetic import generate_synthetic

REPO = Path(__file__).resolve().parents[1]


def la_root() -> Path:
    """``$SSLBENCH_LA_ROOT``, else ``<repo>/../shared/data/LA``."""
    return Path(os.environ.get("SSLBENCH_LA_ROOT", REPO.parent / "shared" / "data" / "LA"))


@pytest.fixture(scope="session")
def la() -> Path:
    root = la_root()
    if not (root / "train.list").is_file() or not (root / "2018LA_Seg_Training Set").is_dir():
        pytest.skip(f"LA dataset not found at {root} (set SSLBENCH_LA_ROOT to its folder)")
    return root


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 training and 2 test cases of 40 x 40 x 24 voxels."""
    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), n_train=10, n_test=2, shape=(40, 40, 24))
