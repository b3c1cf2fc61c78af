"""Provenance in every run directory, evaluation and table; a run directory of another configuration is refused."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from reliability.helpers import REPO, fake_results, tiny_config, train_args

from benchmarks.cli import main
from benchmarks.config import config_hash
from benchmarks.config.coerce import to_dict
from benchmarks.config.schema import SCHEMA_VERSION
from benchmarks.report.suites import load_suite
from benchmarks.report.tables import build_tables
from benchmarks.train.trainer import FINAL, LATEST


@pytest.fixture(scope="module")
def trained(base_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("provenance") / "run"
    assert main([*train_args(base_dataset), "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    return run


def test_run_directory_records_config_hash_seed_code_packages_device(trained: Path, base_dataset: Path) -> None:
    config, _ = tiny_config(base_dataset)
    recorded = yaml.safe_load((trained / "config.yaml").read_text())
    assert recorded == {"schema_version": SCHEMA_VERSION, **to_dict(config)}  # the resolved config
    record = json.loads((trained / "provenance.json").read_text())
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert record["config_hash"] == config_hash(config) and record["seed"] == config.seed == 1337
    assert record["code"]["commit"] == head and isinstance(record["code"]["dirty"], bool)
    assert record["packages"]["torch"] and record["packages"]["numpy"] and record["python"]
    assert record["device"]["type"] == "cpu" and record["empty_label_cases"] == []
    assert json.loads((trained / "status.json").read_text()) == {
        "status": "completed", "config_hash": config_hash(config), "checkpoint": FINAL}


def test_evaluation_records_the_run_checkpoint_and_code(trained: Path, tmp_path: Path) -> None:
    summary = json.loads((trained / "eval" / "summary.json").read_text())
    run_hash = json.loads((trained / "provenance.json").read_text())["config_hash"]
    assert summary["config_hash"] == run_hash and summary["seed"] == 1337 and summary["status"] == "completed"
    assert summary["checkpoint"] == FINAL
    assert summary["checkpoint_sha256"] == hashlib.sha256((trained / FINAL).read_bytes()).hexdigest()
    assert summary["checkpoint_position"] == {"stage_index": 1, "iteration": 0}
    assert summary["provenance"]["code"]["commit"] and summary["provenance"]["device"]["type"] == "cpu"
    assert summary["training_provenance"]["code"] == json.loads((trained / "provenance.json").read_text())["code"]
    # changed evaluation settings are recorded; the hash still names the run that was scored
    out = tmp_path / "eval_strided"
    assert main(["evaluate", str(trained), "--set", "eval.strides=[8,8,8]", "--out", str(out), "--no-progress"]) == 0
    other = json.loads((out / "summary.json").read_text())
    assert other["config_hash"] == run_hash and other["eval_overrides"] == {"eval": {"strides": [8, 8, 8]}}


def test_tables_carry_per_run_provenance(tmp_path: Path) -> None:
    suite = load_suite("smoke")
    fake_results(suite, tmp_path)
    build_tables(suite, tmp_path / "tables", tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "table_synthetic.csv", dtype=str)
    index = {run.path: i for i, run in enumerate(suite.runs)}
    for _, row in table[table.row_key != "lefed_minus_bcp"].iterrows():
        runs = row.run_dirs.split(";")
        i = index[runs[0]]
        assert row.config_hashes.split(";") == [f"hash{index[r]}" for r in runs]
        assert row.seeds.split(";") == ["1337"] * len(runs)
        assert row.code == f"{i:012d}" + ("+dirty" if i % 2 else "") and row.devices == "cpu"
    runs_csv = pd.read_csv(tmp_path / "tables" / "runs.csv", dtype=str)
    assert runs_csv.config_hash.tolist() == [f"hash{i}" for i in range(len(suite.runs))]
    assert runs_csv.train_code.tolist()[:2] == ["000000000000", "000000000001+dirty"]
    md = (tmp_path / "tables" / "table_synthetic.md").read_text()
    assert re.search(r"code 000000000000, 000000000001\+dirty, ", md)


def test_run_directory_of_another_config_is_refused_naming_keys_and_values(
        base_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main([*train_args(base_dataset), "--out", str(run)]) == 0
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([*train_args(base_dataset, "iterations=4", "optimizer.lr=0.1"), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"sslbench train: error: run directory {run} holds a run with another configuration (differing "
                   "keys: iterations, optimizer.lr; recorded -> requested: iterations: 3 -> 4; optimizer.lr: 0.01 -> "
                   "0.1); choose another --out or remove the directory")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == files  # nothing reused or overwritten
    # operational keys (device, workers, checkpoint frequency) may change: the run is reused as it is
    assert main([*train_args(base_dataset, "checkpoint_every=2"), "--out", str(run)]) == 0
    assert (run / LATEST).read_bytes() == files[LATEST]
