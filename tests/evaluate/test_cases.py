"""evaluate_cases end to end with an oracle predictor, and write_evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

from benchmarks.errors import ConfigError
from benchmarks.evaluate.cases import COLUMNS, evaluate_cases, write_evaluation
from benchmarks.evaluate.inference import Inferer

WINDOWS = Inferer((8, 8, 8), (4, 4, 4))


def _oracle(x: Tensor) -> Tensor:
    """Foreground logit = image, background 0: predicts ``image > 0``."""
    return torch.cat([torch.zeros_like(x), x], dim=1)


def _cases() -> list:
    label = np.zeros((12, 10, 9), np.uint8)
    label[2:7, 2:6, 2:6] = 1
    image = np.where(label, 1.0, -1.0).astype(np.float32)
    two = image.copy()
    two[10, 8, 7] = 1.0  # a stray one-voxel component
    empty = np.full_like(image, -1.0)
    return [("exact", image, label, (1.0, 1.0, 2.0)), ("stray", two, label, (1.0, 1.0, 2.0)),
            ("miss", empty, label, (0.5, 0.5, 0.5))]


def test_evaluate_cases_and_lcc() -> None:
    frame = evaluate_cases(_oracle, _cases(), WINDOWS, progress=False)
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["case"]) == ["exact", "stray", "miss"]
    exact, stray, miss = frame.to_dict("records")
    assert (exact["dice"], exact["hd95"], exact["asd_mm"], exact["empty_pred"]) == (100.0, 0.0, 0.0, 0)
    assert stray["dice"] < 100.0 and stray["asd"] > 0
    assert (miss["dice"], miss["empty_pred"]) == (0.0, 1)
    assert miss["hd95"] == pytest.approx(math.sqrt(12**2 + 10**2 + 9**2))
    assert miss["hd95_mm"] == pytest.approx(0.5 * miss["hd95"])

    with_lcc = evaluate_cases(_oracle, _cases(), Inferer((8, 8, 8), (4, 4, 4), batch_size=3, lcc=True),
                              empty_policy="official_zero", progress=False)
    assert list(with_lcc["dice"]) == [100.0, 100.0, 0.0]
    assert with_lcc.loc[2, "hd95"] == 0.0


def test_unknown_policy_fails_before_inference() -> None:
    with pytest.raises(ConfigError):
        evaluate_cases(lambda x: pytest.fail("predict called"), _cases(), WINDOWS, empty_policy="x")


def test_write_evaluation(tmp_path) -> None:
    frame = evaluate_cases(_oracle, _cases(), WINDOWS, empty_policy="nan", progress=False)
    summary = write_evaluation(tmp_path / "eval", frame, {"empty_policy": "nan", "lcc": False, "units": "voxel"})
    assert summary["n_cases"] == 3 and summary["n_empty"] == 1 and summary["lcc"] is False
    assert summary["hd95_mean"] == pytest.approx(frame["hd95"].iloc[:2].mean())
    assert json.loads((tmp_path / "eval" / "summary.json").read_text()) == summary
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "eval" / "per_case.csv"), frame, check_dtype=False)
    with pytest.raises(ValueError, match="overwrite"):
        write_evaluation(tmp_path, frame, {"n_cases": 1})
