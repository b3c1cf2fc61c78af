"""The one home of run-directory paths and file names (trainer, evaluation, reports and the workflow).

A run directory holds ``config.yaml``, ``provenance.json``, ``split.json``, ``log.csv``, ``val.csv``, the
checkpoints (``checkpoint_latest.pt``, ``checkpoint_final.pt``, ``checkpoint_best.pt`` of the last stage and
``checkpoint_best_<stage>.pt`` of earlier ones; ``checkpoint_test_best[_<stage>].pt`` under ``selection:
test_best``), ``status.json`` (the training's outcome), weight snapshots ``snapshots/<stage>_<iteration>.pt``,
``eval/`` (``summary.json``, ``per_case.csv`` of the selected checkpoint) and ``eval_final/`` (the same of the
last checkpoint).
"""

from __future__ import annotations

CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
SPLIT = "split.json"
LOG, VAL_LOG = "log.csv", "val.csv"
LATEST, FINAL, BEST = "checkpoint_latest.pt", "checkpoint_final.pt", "checkpoint_best.pt"
#: The best checkpoint on the test set (``selection: test_best``): an oracle, never a held-out selection.
TEST_BEST = "checkpoint_test_best.pt"
#: The outcome of a training: ``{"status": "completed" | "failed", ...}`` (the workflow's train target).
STATUS = "status.json"
SNAPSHOTS = "snapshots"
EVAL = "eval"
#: The scores of the last checkpoint (``sslbench evaluate --checkpoint final``), beside ``eval/``.
EVAL_FINAL = "eval_final"
#: Where suites put their runs: ``<RUNS_ROOT>/<suite>/<run_subdir(...)>``.
RUNS_ROOT = "results/runs"


def stage_best(stage: str, best: str = BEST) -> str:
    """The best checkpoint (``BEST`` or ``TEST_BEST``) of a stage that is not the last one."""
    return f"{best.removesuffix('.pt')}_{stage}.pt"


def snapshot_name(stage: str, iteration: int) -> str:
    """The weight snapshot of ``stage`` after ``iteration`` outer iterations (counted from 1)."""
    return f"{stage}_{iteration:06d}.pt"


def run_subdir(dataset: str, key: str, labels: str, seed: int | str) -> str:
    """``<dataset>/<key>/labels<labels>/seed<seed>``: a run's place below a runs root (``key`` is the method,
    with its presets, or a suite's row key)."""
    return f"{dataset}/{key}/labels{labels}/seed{seed}"


def suite_run(suite: str, dataset: str, key: str, labels: str, seed: int | str) -> str:
    """A suite run's directory, relative to the working directory (wildcards in the workflow's rules)."""
    return f"{RUNS_ROOT}/{suite}/{run_subdir(dataset, key, labels, seed)}"
