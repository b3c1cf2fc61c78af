"""Table I-III extras from made-up stored results: paired statistics, NSD, checkpoint kind and compute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sp

from benchmarks.report.figures import fig_last_vs_best, fig_paired
from benchmarks.report.stats import holm
from benchmarks.report.suites import load_suite
from benchmarks.report.tables import build_tables

CASES = ["a", "b", "c", "d", "e", "f"]
#: Per-case Dice per row and seed; LeFeD is 3 points above BCP on every case, V-Net far below; CAML is a row
#: beyond the paper.
DICE = {
    "vnet_lower": {1337: [50, 55, 40, 60, 45, 52], 1338: [52, 53, 42, 58, 47, 50]},
    "bcp": {1337: [80, 82, 75, 90, 70, 85], 1338: [82, 80, 77, 88, 72, 83]},
    "lefed": {1337: [83, 85, 78, 93, 73, 88], 1338: [85, 83, 80, 91, 75, 86]},
    "caml": {1337: [84, 83, 79, 92, 74, 86], 1338: [84, 85, 79, 90, 74, 88]},
}
MAIN, BEYOND = ["vnet_lower", "bcp", "lefed"], ["caml"]


def _fake_suite(tmp_path: Path, kind: str) -> tuple[Path, object]:
    data = tmp_path / "data" / "LA"
    data.mkdir(parents=True)
    (data / "test.list").write_text("x\n")
    spec = {"name": "fake", "datasets": [{"name": "la", "data_root": str(data), "labels": [8]}],
            "methods": MAIN, "beyond": BEYOND, "seeds": [1337, 1338],
            "rows": {"vnet_lower": {"method": "vnet", "label": "V-Net (labeled only)", "ranked": False}},
            "statistics": {"references": ["lefed", "bcp"], "resamples": 2000, "seed": 3}}
    (tmp_path / "fake.yaml").write_text(yaml.safe_dump(spec))
    suite = load_suite(tmp_path / "fake.yaml")
    for run in suite.runs:
        dice = DICE[run.key][run.seed]
        ev = tmp_path / run.path / "eval"
        ev.mkdir(parents=True)
        pd.DataFrame({"case": CASES, "dice": dice, "jaccard": dice, "asd": 1.0, "hd95": 2.0, "nsd": dice,
                      "empty_pred": 0}).to_csv(ev / "per_case.csv", index=False)
        ev.joinpath("summary.json").write_text(json.dumps({
            "dice_mean": float(np.mean(dice)), "jaccard_mean": float(np.mean(dice)), "asd_mean": 1.0,
            "hd95_mean": 2.0, "nsd_mean": float(np.mean(dice)) - 1, "n_empty": 0, "selection": "heldout",
            "checkpoint_kind": kind, "nsd_tolerance_mm": 2.0, "lcc": False, "empty_policy": "penalty",
            "units": {"dice": "%", "jaccard": "%", "asd": "voxel", "hd95": "voxel", "nsd": "%"}}))
        last = tmp_path / run.path / "eval_final"
        last.mkdir()
        last.joinpath("summary.json").write_text(json.dumps({"dice_mean": float(np.mean(dice)) - 1, "seed": run.seed,
                                                             "checkpoint_kind": "last"}))
        pd.DataFrame({"stage": "main", "iteration": [0, 1], "seconds": [1800.0, 1800.0 * run.seed / 1337]}).to_csv(
            tmp_path / run.path / "log.csv", index=False)
    build_tables(suite, tmp_path / "tables", tmp_path)
    return tmp_path / "tables", suite


def _pooled(row: str) -> np.ndarray:
    return np.mean([DICE[row][1337], DICE[row][1338]], axis=0)


def test_paired_statistics_nsd_checkpoint_and_compute(tmp_path: Path) -> None:
    tables, _ = _fake_suite(tmp_path, "heldout_best")
    table = pd.read_csv(tables / "table_III_la.csv")
    assert set(table.metric) >= {"dice", "jaccard", "asd", "hd95", "nsd"}
    nsd = table[(table.row_key == "lefed") & (table.metric == "nsd")].iloc[0]
    assert nsd["mean"] == pytest.approx(np.mean(_pooled("lefed")) - 1) and nsd.nsd_tolerance_mm == 2.0
    dice = table[table.metric == "dice"].set_index("row_key")
    others = ["vnet_lower", "bcp", "caml"]  # the row beyond the paper is compared too
    assert (dice.loc[others, "reference"] == "lefed").all()
    raw = [sp.wilcoxon(_pooled(r) - _pooled("lefed")).pvalue for r in others]
    assert dice.loc[others, "p_value"].tolist() == pytest.approx(raw)
    assert dice.loc[others, "p_holm"].tolist() == pytest.approx(holm(raw))
    caml = table[(table.row_key == "caml") & (table.metric == "nsd")].iloc[0]
    assert caml["mean"] == pytest.approx(np.mean(_pooled("caml")) - 1) and caml.checkpoint == "heldout_best"
    assert dice.loc["bcp", "diff_mean"] == pytest.approx(-3.0)
    assert dice.loc["bcp", "diff_ci_low"] == dice.loc["bcp", "diff_ci_high"] == pytest.approx(-3.0)  # constant
    assert (table[table.run_dirs.notna()].checkpoint == "heldout_best").all()  # cells, not derived rows
    # compute: 1800 s + 1800 s x seed/1337 per run; two runs per cell
    hours = [(1800 + 1800 * seed / 1337) / 3600 for seed in (1337, 1338)]
    assert dice.loc["lefed", "device_hours"] == pytest.approx(sum(hours), abs=1e-5)
    assert dice.loc["lefed", "wall_hours_per_run"] == pytest.approx(np.mean(hours), abs=1e-5)
    both = pd.read_csv(tables / "table_III_la_stats.csv")
    assert set(zip(both.reference, both.row)) == {("lefed", "vnet_lower"), ("lefed", "bcp"), ("lefed", "caml"),
                                                   ("bcp", "vnet_lower"), ("bcp", "lefed"), ("bcp", "caml")}
    assert (both.resamples == 2000).all() and (both.seed == 3).all()
    md = (tables / "table_III_la.md").read_text()
    assert "Δ Dice vs LeFeD [95 % CI]" in md and "Δ Dice vs BCP [95 % CI]" in md and "NSD (%)" in md
    assert "| ref |" in md and "−3.00 [−3.00, −3.00]" in md and "+3.00 [+3.00, +3.00]" in md
    caml_line = next(line for line in md.splitlines() if line.startswith("| CAML"))
    assert caml_line.count(" [") == 2 and "(published " in caml_line and "**" not in caml_line  # CIs, no bold
    assert "Checkpoint shown: held-out best" in md and "NSD: surface Dice at 2.0 mm" in md and "†" not in md
    runs = pd.read_csv(tables / "runs.csv")
    assert {"checkpoint_kind", "device_hours", "nsd", "dice_last"} <= set(runs.columns)
    assert (tables / "table_III_la.tex").read_text().count("Holm") == 1


def test_test_best_cells_are_marked(tmp_path: Path) -> None:
    tables, _ = _fake_suite(tmp_path, "test_best")
    md = (tables / "table_III_la.md").read_text()
    assert "Checkpoint shown: test-best oracle †" in md and md.count("†") > len(DICE)
    table = pd.read_csv(tables / "table_III_la.csv")
    assert (table[table.run_dirs.notna()].checkpoint == "test_best").all()


def test_last_vs_best_and_paired_figures(tmp_path: Path) -> None:
    from benchmarks.report.tables import Results

    _, suite = _fake_suite(tmp_path, "heldout_best")
    results, out, dataset = Results(suite, tmp_path), tmp_path / "figures", suite.datasets()[0]
    fig_last_vs_best(suite, out, results, dataset)
    fig_paired(suite, out, results, dataset)
    for stem in ("fig_last_vs_best_la", "fig_paired_la"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.pdf").is_file()
    gap = pd.read_csv(out / "fig_last_vs_best_la.csv")
    assert len(gap) == 2 * len(suite.runs) and set(gap.checkpoint) == {"heldout_best", "last"}
    shown, last = (gap[gap.shown == flag].set_index("run_dir").dice for flag in (True, False))
    assert (shown - last).round(6).eq(1.0).all()
    paired = pd.read_csv(out / "fig_paired_la.csv")
    bcp = paired[(paired.reference == "lefed") & (paired.row == "bcp")]
    assert len(bcp) == len(CASES) and (bcp.difference == -3.0).all() and (bcp.mean_difference == -3.0).all()
    assert set(paired.reference) == {"lefed", "bcp"} and not paired.significant.any()  # six cases: p >= 1/32
