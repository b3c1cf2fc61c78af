"""The ``sslbench`` command line, end to end on synthetic and real data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from runs import DEFAULT_BUDGET, GAIN, dice_before_and_after, tiny_synthetic_run

import methods
from benchmarks.cli import main
from benchmarks.evaluate.cases import COLUMNS

TINY = ["--set", "filters=4", "--set", "patch=[32,32,16]", "--set", "eval.window=[32,32,16]",
        "--set", "eval.strides=[16,16,8]", "--no-progress"]


def test_methods_lists_vnet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    assert "vnet" in capsys.readouterr().out


def test_complexity_reports_the_official_vnet_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["complexity", "--method", "vnet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] == 9_448_866
    assert result["params_train"] == 9_448_866
    assert abs(result["macs"] - 35.65e9) < 0.1e9


def test_bad_input_exits_with_a_named_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["complexity", "--method", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["train", "--set", "iterations=-1", "--out", str(tmp_path / "r")]) == 2
    assert "'iterations'" in capsys.readouterr().err
    assert main(["train", "--dataset", "la", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "train.list" in capsys.readouterr().err


def test_train_then_evaluate_synthetic(tiny_synthetic: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["--dataset", "synthetic", "--data-root", str(tiny_synthetic), "--labels", "4",
            "--set", "iterations=4", "--set", "validation=2", "--set", "val_every=2", *TINY]
    assert main(["train", *args, "--out", str(run)]) == 0
    assert main(["train", *args, "--out", str(run)]) == 0  # finished run: nothing to redo
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    per_case = pd.read_csv(run / "eval" / "per_case.csv")
    assert tuple(per_case.columns) == COLUMNS
    assert list(per_case["case"]) == (tiny_synthetic / "test.list").read_text().split()
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["checkpoint"] == "checkpoint_best.pt"
    assert summary["n_cases"] == 2
    for key in ("dice_mean", "jaccard_mean", "asd_mean", "hd95_mean", "config_hash", "provenance", "empty_policy"):
        assert key in summary
    assert main(["evaluate", str(run), "--checkpoint", "final", "--set", "eval.lcc=true", "--no-progress"]) == 0
    assert json.loads((run / "eval_final" / "summary.json").read_text())["lcc"] is True


@pytest.mark.slow
def test_short_training_beats_an_untrained_network(tiny_synthetic: Path, tmp_path: Path) -> None:
    """``sslbench train --config FILE`` with the contract test's default learning budget."""
    before, after = dice_before_and_after(tiny_synthetic_run(tiny_synthetic, **DEFAULT_BUDGET), tmp_path, cli=True)
    assert after > before + GAIN, (after, before)


@pytest.mark.parametrize("method", methods.available_methods())
def test_every_method_trains_and_evaluates_on_synthetic_data(method: str, tiny_synthetic: Path, tmp_path: Path) -> None:
    run = tmp_path / method
    args = ["--method", method, "--dataset", "synthetic", "--data-root", str(tiny_synthetic), "--labels", "4",
            "--set", "iterations=2", "--set", "selection=last", *TINY]
    assert main(["train", *args, "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--no-progress"]) == 0
    per_case = pd.read_csv(run / "eval" / "per_case.csv")
    assert len(per_case) == 2 and per_case["dice"].between(0, 100).all()


@pytest.mark.parametrize("method", methods.available_methods())
def test_every_method_trains_and_evaluates_on_real_la(method: str, la_subset: Path, tmp_path: Path) -> None:
    """Two iterations on real LA patches (CPU-sized), then a sliding-window evaluation of a whole test volume."""
    run = tmp_path / method
    args = ["--method", method, "--dataset", "la", "--data-root", str(la_subset), "--labels", "4",
            "--set", "iterations=2", "--set", "selection=last", "--set", "filters=4", "--set", "patch=[32,32,16]",
            "--no-progress"]
    assert main(["train", *args, "--out", str(run)]) == 0
    split = json.loads((run / "split.json").read_text())
    assert (len(split["labeled"]), len(split["unlabeled"]), len(split["test"])) == (4, 4, 1)
    assert main(["evaluate", str(run), "--set", "eval.window=[64,64,48]", "--set", "eval.strides=[64,64,48]",
                 "--no-progress"]) == 0
    per_case = pd.read_csv(run / "eval" / "per_case.csv")
    assert len(per_case) == 1 and per_case["dice"].between(0, 100).all()
