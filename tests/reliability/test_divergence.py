"""A non-finite loss stops the run at that iteration, names the terms, keeps the last good checkpoint and records
the run as failed; evaluation and the tables carry the failure instead of stopping at it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from reliability.helpers import fake_results, train_args

from benchmarks.cli import main
from benchmarks.report.suites import load_suite
from benchmarks.report.tables import build_tables
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import LATEST
from methods.vnet import SupervisedVNet


def test_huge_learning_rate_stops_at_the_diverging_iteration(base_dataset: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = [*train_args(base_dataset, "iterations=8", "optimizer.lr=1e6"), "--out", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    status = json.loads((run / "status.json").read_text())
    at = status["iteration"]
    assert 0 < at < 8 and status["status"] == "failed" and status["stage"] == "train"
    assert status["terms"] and all(not math.isfinite(float(v)) for v in status["terms"].values())
    terms = ", ".join(f"{k}={v}" for k, v in status["terms"].items())
    assert err == (f"sslbench train: error: stage 'train', iteration {at}: non-finite loss terms {terms}; "
                   f"the last good checkpoint is {run / LATEST}")
    assert status["last_good_checkpoint"] == LATEST
    state = load_checkpoint(run / LATEST)
    assert (state["stage_index"], state["iteration"]) == (0, at)  # checkpoint_every=1: the step before
    assert all(torch.isfinite(v).all() for v in state["method_state"].values() if v.is_floating_point())
    assert pd.read_csv(run / "log.csv")["iteration"].tolist() == list(range(at))
    assert not (run / "checkpoint_final.pt").exists()

    assert main(args) == 2  # deterministic: a rerun resumes and diverges at the same iteration
    assert json.loads((run / "status.json").read_text())["iteration"] == at

    capsys.readouterr()
    assert main(["evaluate", str(run), "--no-progress"]) == 0  # the failure is recorded, not scored
    assert "not scored: training failed (stage 'train', iteration" in capsys.readouterr().err
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["iteration"] == at
    assert summary["n_cases"] == 0 and summary["dice_mean"] is None
    assert summary["config_hash"] == json.loads((run / "provenance.json").read_text())["config_hash"]
    assert pd.read_csv(run / "eval" / "per_case.csv").empty
    # the last good checkpoint can still be scored by naming it
    assert main(["evaluate", str(run), "--checkpoint", str(run / LATEST), "--no-progress"]) == 0
    scored = json.loads((run / "eval_checkpoint_latest" / "summary.json").read_text())
    assert scored["status"] == "completed" and scored["checkpoint_position"]["iteration"] == at


def test_divergence_before_the_first_checkpoint(base_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    original = SupervisedVNet.training_step

    def infinite_input(self: SupervisedVNet, ctx, batch):  # type: ignore[no-untyped-def]
        batch.image[:] = float("inf")
        return original(self, ctx, batch)

    monkeypatch.setattr(SupervisedVNet, "training_step", infinite_input)
    run = tmp_path / "run"
    assert main([*train_args(base_dataset), "--out", str(run)]) == 2
    assert "iteration 0: non-finite loss terms loss=nan" in capsys.readouterr().err
    status = json.loads((run / "status.json").read_text())
    assert status["iteration"] == 0 and status["last_good_checkpoint"] is None
    assert not (run / LATEST).exists()


def test_tables_mark_a_failed_run_and_keep_the_others(tmp_path: Path) -> None:
    suite = load_suite("smoke")
    failed = suite.find("synthetic", "lefed", "4", 1337)
    fake_results(suite, tmp_path, failed=frozenset({failed}))
    build_tables(suite, tmp_path / "tables", tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "table_synthetic.csv")
    lefed = table[table.row_key == "lefed"]
    assert (lefed.n_runs == 0).all() and (lefed.n_failed == 1).all() and (lefed.failed_runs == failed).all()
    assert lefed["mean"].isna().all()
    others = table[table.row_key.isin(["vnet_lower", "vnet_upper"])]
    assert (others.n_runs == 1).all() and (others.n_failed == 0).all() and others["mean"].notna().all()
    md = (tmp_path / "tables" / "table_synthetic.md").read_text()
    assert "| LeFeD |  | failed | failed | failed | failed |" in md  # no split.json: scans blank
    assert f"Failed run (left out of the means): {failed}: stage 'train', iteration 3: non-finite loss" in md
    # every table the run feeds marks it (the ablation's `full` row is the same run)
    ablation = pd.read_csv(tmp_path / "tables" / "table_IV_ablation.csv")
    assert (ablation[ablation.row_key == "full"].n_failed == 1).all()
    runs = pd.read_csv(tmp_path / "tables" / "runs.csv").set_index("run_dir")
    assert runs.loc[failed, "status"] == "failed" and "non-finite" in runs.loc[failed, "failure"]
    assert (runs.drop(index=failed)["status"] == "completed").all()
