"""Result files are readable by colleagues: created with the umask's mode (0644 under 022), like ``open``'s."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.config import load_config
from benchmarks.data.cases import write_case
from benchmarks.data.layouts import write_id_list
from benchmarks.data.pack import pack_dataset
from benchmarks.io import umask, write_csv, write_files, write_json
from benchmarks.train.trainer import Trainer


@pytest.fixture
def mask022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writers_follow_the_umask(tmp_path: Path, mask022: None) -> None:
    assert umask() == 0o022
    write_json(tmp_path / "a.json", {"x": 1})
    write_csv(tmp_path / "b.csv", pd.DataFrame({"x": [1]}))
    write_files({tmp_path / "c.png": lambda f: f.write(b"png"), tmp_path / "c.csv": lambda f: f.write(b"x\n")})
    write_id_list(tmp_path / "train.list", ["a", "b"])
    write_case(tmp_path / "case.h5", np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 2), np.uint8))
    for name in ("a.json", "b.csv", "c.png", "c.csv", "train.list", "case.h5"):
        assert mode(tmp_path / name) == 0o644, name
    os.umask(0o077)
    write_json(tmp_path / "private.json", {})
    assert mode(tmp_path / "private.json") == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, mask022: None) -> None:
    target = tmp_path / "summary.json"
    write_json(target, {"v": 1})
    target.chmod(0o640)
    write_json(target, {"v": 2})
    assert mode(target) == 0o640 and '"v": 2' in target.read_text()


def test_run_directory_and_pack_are_readable(tiny_synthetic: Path, tmp_path: Path, mask022: None) -> None:
    config, options = load_config({"dataset": "synthetic", "data_root": str(tiny_synthetic), "labels": "4",
                                   "iterations": 1, "patch": [32, 32, 16], "filters": 4, "selection": "last",
                                   "device": "cpu"})
    Trainer(config, options, tmp_path / "run", progress=False).fit()
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"checkpoint_final.pt", "config.yaml", "log.csv", "provenance.json"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o644 for p in files}
    pack = pack_dataset(tiny_synthetic, tmp_path / "data.pack", progress=False).path
    assert mode(pack) == 0o755
    assert all(mode(p) == 0o644 for p in pack.iterdir())
