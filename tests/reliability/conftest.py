"""Fixtures of the reliability tests: the tiny dataset of :mod:`reliability.helpers`, shared or copied."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability.helpers import write_dataset


@pytest.fixture(scope="session")
def base_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("base_dataset"))


@pytest.fixture
def dataset(base_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset, for tests that break it."""
    return Path(shutil.copytree(base_dataset, tmp_path / "data"))
