"""Evaluate a predictor on test cases and write ``per_case.csv`` and ``summary.json``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor
from tqdm.auto import tqdm

from benchmarks.errors import DataError
from benchmarks.io import write_csv, write_json

from .inference import Inferer
from .metrics import METRICS, case_metrics, check_empty_policy, summarize

#: One test case: ID, image (X, Y, Z) float32, label (X, Y, Z) in {0, 1}, voxel spacing in mm.
Case = tuple[str, np.ndarray, np.ndarray, Sequence[float]]
#: Columns of ``per_case.csv``.
COLUMNS = ("case", *METRICS, "empty_pred")


def evaluate_cases(
    predict: Callable[[Tensor], Tensor],
    cases: Iterable[Case],
    inferer: Inferer,
    empty_policy: str = "penalty",
    progress: bool = True,
    nsd_tolerance: float | None = None,
) -> pd.DataFrame:
    """``inferer``'s mask (sliding window, optional LCC) and metrics for every case, in the order given.

    ``predict`` maps ``(B, 1, *window)`` to logits ``(B, K, *window)`` (see :func:`~.inference.sliding_window`).
    Returns one row per case with the columns :data:`COLUMNS`: Dice and Jaccard in percent, ASD and 95HD
    in voxels and in mm, NSD in percent at ``nsd_tolerance`` mm (blank when ``None``), ``empty_pred`` 0/1.
    """
    check_empty_policy(empty_policy)
    rows = []
    bar = tqdm(cases, desc="evaluate", unit="case", disable=not progress)
    for case_id, image, label, spacing in bar:
        if np.shape(image)[-3:] != np.shape(label):
            raise DataError(f"case {case_id}: image {np.shape(image)} and label {np.shape(label)} differ in shape")
        mask = inferer.segment(predict, image)
        rows.append({"case": case_id, **case_metrics(mask, label, spacing, empty_policy, nsd_tolerance)})
        bar.set_postfix(case=case_id, dice=f"{rows[-1]['dice']:.2f}")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_evaluation(
    out_dir: str | os.PathLike[str], per_case: pd.DataFrame, summary_extra: dict[str, Any]
) -> dict[str, Any]:
    """Write ``out_dir/per_case.csv`` and ``out_dir/summary.json`` atomically; return the summary.

    A previous ``summary.json`` is removed first and the new one written last, so a summary never sits beside
    a ``per_case.csv`` it was not computed from (a kill in between leaves no summary: evaluate again).

    The summary is :func:`summarize` of ``per_case`` followed by ``summary_extra`` (provenance such as
    ``empty_policy``, ``lcc``, ``units``, ``checkpoint``), whose keys must not shadow a statistic.
    """
    summary = summarize(per_case)
    clash = sorted(summary.keys() & summary_extra.keys())
    if clash:
        raise ValueError(f"summary_extra keys {clash} would overwrite computed statistics")
    summary.update(summary_extra)
    out_dir = Path(out_dir)
    (out_dir / "summary.json").unlink(missing_ok=True)
    write_csv(out_dir / "per_case.csv", per_case)
    write_json(out_dir / "summary.json", summary)
    return summary
