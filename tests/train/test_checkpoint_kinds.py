"""Which checkpoint a score comes from: held-out best, last, and the test-best oracle of literature mode."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.config import load_config
from benchmarks.evaluate.run import evaluate_run
from benchmarks.train.trainer import BEST, FINAL, TEST_BEST, Trainer


def _train(root: Path, run_dir: Path, selection: str) -> None:
    config, options = load_config({
        "dataset": "synthetic", "data_root": str(root), "labels": "4", "iterations": 4, "patch": [32, 32, 16],
        "filters": 4, "checkpoint_every": 2, "validation": 2, "val_every": 2, "val_start": 0.0,
        "selection": selection, "eval": {"window": [32, 32, 16], "strides": [32, 32, 16]}, "device": "cpu",
    })
    Trainer(config, options, run_dir, progress=False).fit()


def test_heldout_run_scores_best_and_last(tiny_synthetic: Path, tmp_path: Path) -> None:
    run = tmp_path / "heldout"
    _train(tiny_synthetic, run, "heldout")
    assert (run / BEST).is_file() and not (run / TEST_BEST).is_file()
    best = evaluate_run(run, progress=False)
    last = evaluate_run(run, "final", progress=False)
    assert (best["checkpoint"], best["checkpoint_kind"]) == (BEST, "heldout_best")
    assert (last["checkpoint"], last["checkpoint_kind"]) == (FINAL, "last")
    assert (run / "eval_final" / "summary.json").is_file()
    assert best["nsd_tolerance_mm"] == 2.0 and 0.0 <= best["nsd_mean"] <= 100.0


def test_literature_mode_keeps_the_test_best_oracle(tiny_synthetic: Path, tmp_path: Path) -> None:
    """``selection: test_best`` trains on every training case, validates on the test cases and scores the
    checkpoint of the highest test Dice: its score is the best one ``val.csv`` recorded."""
    run = tmp_path / "literature"
    _train(tiny_synthetic, run, "test_best")
    assert (run / TEST_BEST).is_file() and not (run / BEST).is_file()
    summary = evaluate_run(run, progress=False)
    assert (summary["checkpoint"], summary["checkpoint_kind"]) == (TEST_BEST, "test_best")
    val = pd.read_csv(run / "val.csv")
    assert len(val) == 2 and summary["dice_mean"] == pytest.approx(val["dice"].max(), abs=1e-6)
    assert evaluate_run(run, "test_best", out=tmp_path / "again", progress=False)["checkpoint_kind"] == "test_best"
