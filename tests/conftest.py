"""Shared fixtures: the real LA dataset (skipped when absent) and a tiny synthetic dataset.

Methods that tests add to the registry live in ``method_*.py`` files beside the tests; they are imported
before any test module is collected, so the contract test (``tests/methods/test_contract.py``) covers them
like the built-in methods, with no test of their own.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from benchmarks.data.synthetic import generate_synthetic

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    for path in sorted(Path(__file__).parent.rglob("method_*.py")):
        name = f"sslbench_test_methods.{path.stem}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


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


@pytest.fixture(scope="session")
def la_subset(la: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real LA layout restricted to its first 8 training cases and its first test case (symbolic links, no
    copies)."""
    root = tmp_path_factory.mktemp("la_subset")
    folder = root / "2018LA_Seg_Training Set"
    folder.mkdir()
    for name, count in (("train.list", 8), ("test.list", 1)):
        ids = (la / name).read_text().split()[:count]
        (root / name).write_text("".join(f"{i}\n" for i in ids))
        for case_id in ids:
            (folder / case_id).symlink_to(la / "2018LA_Seg_Training Set" / case_id, target_is_directory=True)
    return root
