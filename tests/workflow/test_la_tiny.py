"""The tiny real-LA suite: it plans on the real data, and its table has the paper's format (paper column, Δ)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from workflows import BIN, REPO, workflow_env

from benchmarks.report.suites import load_suite
from benchmarks.report.tables import build_tables


def test_la_tiny_plans_on_the_real_la(la: Path, tmp_path: Path) -> None:
    (tmp_path / "LA").symlink_to(la, target_is_directory=True)
    out = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n",
                          "--config", "suite=la_tiny", f"data_root={tmp_path}"],
                         env=workflow_env(), capture_output=True, text=True, check=True)
    rows = (line.split() for line in out.stdout[out.stdout.index("Job stats"):].splitlines())
    counts = {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}
    assert (counts["train"], counts["evaluate"], counts["tables"]) == (3, 3, 1), out.stdout


def test_la_tiny_table_has_the_paper_format(tmp_path: Path) -> None:
    data = tmp_path / "data" / "LA"
    data.mkdir(parents=True)
    (data / "test.list").write_text("x\n")
    suite = load_suite("la_tiny", data_root=str(tmp_path / "data"))
    assert sorted(run.key for run in suite.runs) == ["bcp", "lefed", "vnet_lower"]
    for i, run in enumerate(suite.runs):
        ev = tmp_path / run.path / "eval"
        ev.mkdir(parents=True)
        ev.joinpath("summary.json").write_text(json.dumps({
            "dice_mean": 60.0 + i, "jaccard_mean": 45.0, "asd_mean": 9.0, "hd95_mean": 30.0, "n_empty": 0,
            "selection": "heldout", "lcc": False, "empty_policy": "penalty", "config_hash": str(i),
            "units": {"dice": "%", "jaccard": "%", "asd": "voxel", "hd95": "voxel"}}))
    build_tables(suite, tmp_path / "tables", tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "table_III_la.csv")
    dice = table[table.metric == "dice"].set_index("row_key")
    assert dice.loc["lefed", "paper"] == pytest.approx(90.00)
    assert dice.loc["lefed", "delta"] == pytest.approx(dice.loc["lefed", "mean"] - 90.00)
    assert pd.notna(dice.loc["bcp", "paper"])
    md = (tmp_path / "tables" / "table_III_la.md").read_text()
    assert "(90.00, Δ −" in md and "LeFeD − BCP" in md
    assert md.startswith("**Table III: Performance comparison of 2 semi-supervised methods and the supervised V-Net on "
                         "the left atrium dataset, using 8 labeled scans**")  # the suite's rows, not the paper's
    assert "budget: each method's recipe with the suite's overrides (filters=8, " in md  # not "official"
    assert "and per-method overrides (method_set)" in md
