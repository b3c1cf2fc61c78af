"""Fixtures: the synthetic raw datasets of ``prepare.rawdata`` (session-scoped where tests only read them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prepare.rawdata import lung_ids, make_la, make_msd, make_pancreas, pancreas_numbers


@pytest.fixture(scope="session")
def raw_la(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_la(tmp_path_factory.mktemp("raw_la"))


@pytest.fixture(scope="session")
def raw_pancreas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pancreas(tmp_path_factory.mktemp("raw_pancreas"), pancreas_numbers())


@pytest.fixture(scope="session")
def raw_lung(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_msd(tmp_path_factory.mktemp("raw_lung"), lung_ids(), direction=np.diag([-1.0, 1.0, 1.0]))


@pytest.fixture
def raw_nnunet(tmp_path: Path) -> Path:
    """Eight nnU-Net v2 cases ``case_000`` ... ``case_007`` (a fresh copy per test)."""
    return make_msd(tmp_path / "raw_nnunet", [f"case_{i:03d}" for i in range(8)], v2=True)
