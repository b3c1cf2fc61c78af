"""Table titles and notes say only what is true of the rows and cells present (fake results, no training)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from reliability.helpers import fake_results, write_dataset

import methods
from benchmarks.config import load_config
from benchmarks.io import write_json
from benchmarks.report.suites import SUITES_DIR, load_suite
from benchmarks.report.tables import Results, TableBuilder, build_tables
from benchmarks.train.trainer import Trainer
from methods.vnet import SupervisedVNet


def _notes(md: str) -> list[str]:
    return [line[2:] for line in md.splitlines() if line.startswith("- ")]


def _counts_are_integers(path: Path) -> bool:
    with path.open(newline="") as f:
        return all(re.fullmatch(r"\d*", row[k]) for row in csv.DictReader(f) for k in ("n_runs", "n_empty", "n_failed"))


def test_demo_table_without_paper_values(tmp_path: Path) -> None:
    suite = load_suite("smoke")  # rows vnet_lower, vnet_upper, lefed on synthetic data: no published values
    fake_results(suite, tmp_path)
    build_tables(suite, tmp_path / "tables", tmp_path)
    tables = tmp_path / "tables"
    md = (tables / "table_synthetic.md").read_text()
    assert md.startswith("**[demo] Table synthetic: Performance comparison of 1 semi-supervised method and the "
                         "supervised V-Net on the synthetic dataset, using 4 labeled scans**")
    notes = " ".join(_notes(md))
    assert "labels: 4 labeled (V-Net (all labeled): all)." in notes
    assert "has no published values (no paper column)" in notes
    for absent in ("In parentheses", "Δ = ours", "⚑", "[empty", "greyed", "reference_numbers", "shared/specs", "†"):
        assert absent not in notes, absent
    assert "DEMO: tiny budgets" in notes and "budget: demo budget: each method's recipe with the suite's overrides (" in notes
    # the columns present are explained: paired Δ Dice against the proposed row, NSD at its tolerance, compute
    assert "Δ Dice vs LeFeD [95 % CI]" in md and "Δ Dice vs a reference row" in notes
    assert "Checkpoint shown: held-out best" in notes and "NSD: surface Dice at 2.0 mm" in notes
    assert "device-h / run" in md and "Compute: training wall-clock hours" in notes
    tex = (tables / "table_synthetic.tex").read_text()
    assert tex.startswith("% needs \\usepackage{booktabs, graphicx, xcolor}")
    assert "\\begin{tabular}{llrrrrrrr}" in tex and "greyed" not in tex  # 5 metrics, Δ Dice [CI], device-h
    page = (tables / "table_synthetic.html").read_text()
    assert "<table>" in page and "<td>V-Net (labeled only)</td>" in page
    assert all(_counts_are_integers(p) for p in tables.glob("table_*.csv"))
    ablation = " ".join(_notes((tables / "table_IV_ablation.md").read_text()))
    assert "(V-Net (all labeled)" not in ablation and "69.76" not in ablation
    assert "Checkpoint shown: held-out best" in ablation  # no compute or paired columns in Tables IV-VI
    assert "Compute:" not in ablation and "Δ Dice" not in ablation


@pytest.fixture
def la_tables(tmp_path: Path) -> Path:
    """Table III of the paper suite from made-up results: Dice 80 + i (far below the paper), two empty predictions
    in one run of UA-MT."""
    data = tmp_path / "data" / "LA"
    data.mkdir(parents=True)
    (data / "test.list").write_text("x\n")
    suite = load_suite("paper", data_root=str(tmp_path / "data"), only=["la"])
    fake_results(suite, tmp_path)
    run = suite.find("la", "uamt", "8", 1337)
    summary = json.loads((tmp_path / run / "eval" / "summary.json").read_text())
    write_json(tmp_path / run / "eval" / "summary.json", {**summary, "n_empty": 2})
    build_tables(suite, tmp_path / "tables", tmp_path)
    return tmp_path / "tables"


def test_paper_table_explains_marks_flags_and_empty_predictions(la_tables: Path) -> None:
    md = (la_tables / "table_III_la.md").read_text()
    assert md.startswith("**Table III: Performance comparison of 9 semi-supervised methods and the supervised V-Net "
                         "(and 2 methods beyond the paper) on the left atrium dataset, using 8, 16 labeled scans**")
    assert "82.74<sup>d</sup>" in md and "^" not in md  # V-Net lower bound, derived from the LeFeD text
    assert " [empty 2]" in md
    notes = " ".join(_notes(md))
    assert "benchmarks/report/data/paper_values.csv cites the source of each" in notes
    assert "d: derived from a difference the paper's text quotes" in notes and "t: a third-party transcription" in notes
    assert "⚑: Dice or Jaccard more than max(1.5 points, 2 × std)" in notes and " ⚑)" in md
    tex = (la_tables / "table_III_la.tex").read_text()
    assert r" $\diamond$)" in tex and r"\dagger" not in tex  # † is kept for test-best cells
    assert "[empty N]: N test cases" in notes and "under the penalty policy" in notes
    assert "reference_numbers" not in md and "DEMO" not in notes and "budget: official (each method's recipe)" in notes
    assert _counts_are_integers(la_tables / "table_III_la.csv")  # LeFeD − BCP rows have no run counts: blank
    beyond = next(n for n in _notes(md) if n.startswith("Beyond the paper: AD-MT, CAML came after"))
    assert "published_values.csv cites the source of each; o: the method's own paper or repository; t: a " \
           "third-party transcription)" in beyond  # AD-MT's repository at 8 labels, CAML's transcriptions
    assert "| AD-MT | " in md and "(published 90.58<sup>o</sup>, Δ " in md


def test_labeled_only_vnet_reports_no_unlabeled_scans(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data")
    config, options = load_config({"dataset": "synthetic", "data_root": str(root), "labels": "4", "iterations": 1,
                                   "patch": [16, 16, 16], "filters": 2, "selection": "last", "device": "cpu"})
    Trainer(config, options, tmp_path / "results" / "run", progress=False).fit()
    assert json.loads((tmp_path / "results" / "run" / "provenance.json").read_text())["uses_unlabeled"] is False
    assert Results(load_suite("smoke"), tmp_path).split_counts("results/run") == (4, 0)


def _smoke_variant(tmp_path: Path, **keys) -> Path:
    """The smoke suite as ``mine.yaml`` with main-table keys only (no LeFeD blocks), ``keys`` replacing its own."""
    spec = yaml.safe_load((SUITES_DIR / "smoke.yaml").read_text())
    for key in ("ablation", "t_sweep", "lambda_sweep", "encodings", "qualitative", "feature_snapshots"):
        spec.pop(key)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({**spec, "name": "mine", **keys}))
    return tmp_path / "mine.yaml"


def test_a_new_method_is_shown_by_its_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Renamed(SupervisedVNet):
        name, paper, label = "renamed_vnet", "test double", "Renamed V-Net"

    monkeypatch.setitem(methods.registry._REGISTRY, Renamed.name, Renamed)
    suite = load_suite(_smoke_variant(tmp_path, methods=["vnet_lower", Renamed.name]))
    fake_results(suite, tmp_path)
    build_tables(suite, tmp_path / "tables", tmp_path)
    md = (tmp_path / "tables" / "table_synthetic.md").read_text()
    assert "| Renamed V-Net |" in md and "renamed_vnet |" not in md
    # Its recipe (a V-Net's) draws no unlabeled batch: a supervised method, named by its label.
    assert "comparison of the supervised V-Net and Renamed V-Net on the synthetic dataset" in md


def test_rows_beyond_the_paper_without_published_values(tmp_path: Path) -> None:
    suite = load_suite(_smoke_variant(tmp_path, beyond=["caml"]))  # no published value on synthetic data
    fake_results(suite, tmp_path)
    build_tables(suite, tmp_path / "tables", tmp_path)
    md = (tmp_path / "tables" / "table_synthetic.md").read_text()
    assert "supervised V-Net (and 1 method beyond the paper) on the synthetic dataset" in md
    assert "| *Beyond the paper* |" in md and "| CAML | " in md
    notes = _notes(md)
    assert "Beyond the paper: CAML came after the paper's comparison; no paper value and no best marking." in notes
    assert not any("parentheses" in n.lower() or "Δ = ours" in n or "published_values" in n for n in notes)


def test_checkpoint_note_says_what_nsd_and_compute_show() -> None:
    cell = {"metric": "nsd", "mean": float("nan"), "run_dirs": "r", "checkpoint": "last", "nsd_tolerance_mm": ""}
    line = TableBuilder.checkpoint_line([cell], compute=False)
    assert line.startswith("Checkpoint shown: last (final iteration)")
    assert "NSD: not in the run summaries (scored where the dataset declares nsd_tolerance_mm)." in line
    assert "Compute" not in line
    scored = TableBuilder.checkpoint_line([{**cell, "mean": 80.0, "nsd_tolerance_mm": 3.0}], compute=True)
    assert "NSD: surface Dice at 3.0 mm" in scored and "Compute: training wall-clock hours" in scored
