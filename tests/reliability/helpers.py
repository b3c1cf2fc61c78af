"""Helpers of the reliability tests (``from reliability.helpers import ...``): a tiny hand-made dataset, CLI
arguments that train on it in about a second."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.config import RunConfig, load_config, parse_sets
from benchmarks.data.cases import write_case
from benchmarks.data.layouts import get_layout, write_id_list
from benchmarks.io import write_json
from benchmarks.report.suites import Suite
from methods.base import Options

REPO = Path(__file__).resolve().parents[2]
LAYOUT = get_layout("prepared")
SHAPE = (20, 20, 16)
N_TRAIN, N_TEST = 6, 1


def ball_case(index: int, shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A bright ball (label 1) in noise: image float32, label uint8."""
    rng = np.random.default_rng(index)
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"))
    centre = np.array(shape)[:, None, None, None] / 2 + rng.uniform(-2, 2, (3, 1, 1, 1))
    label = (((grid - centre) ** 2).sum(0) < (min(shape) / 4) ** 2).astype(np.uint8)
    image = (label + 0.3 * rng.standard_normal(shape)).astype(np.float32)
    return image, label


def case_path(root: Path, index: int) -> Path:
    return LAYOUT.case_path(root, f"c{index}")


def write_dataset(root: Path, shape: tuple[int, int, int] = SHAPE) -> Path:
    """``N_TRAIN`` training cases ``c0``... and ``N_TEST`` test cases in the ``prepared`` layout."""
    ids = [f"c{i}" for i in range(N_TRAIN + N_TEST)]
    for i, case_id in enumerate(ids):
        write_case(LAYOUT.case_path(root, case_id), *ball_case(i, shape), spacing=(1.0, 1.0, 1.0))
    write_id_list(root / "train.list", ids[:N_TRAIN])
    write_id_list(root / "test.list", ids[N_TRAIN:])
    return root


#: ``--set`` items of every tiny run: a CPU run of a few iterations, about a second.
TINY = ("filters=2", "patch=[16,16,16]", "iterations=3", "selection=last", "checkpoint_every=1", "device=cpu",
        "eval.window=[16,16,16]", "eval.strides=[16,16,16]")


def train_args(root: Path, *sets: str, method: str = "vnet", labels: str = "4") -> list[str]:
    """``sslbench train`` arguments of a tiny run on ``root``."""
    args = ["train", "--method", method, "--dataset", "synthetic", "--data-root", str(root), "--labels", labels]
    for item in [*TINY, *sets]:
        args += ["--set", item]
    return [*args, "--no-progress"]


def tiny_config(root: Path, *sets: str, method: str = "vnet", labels: str = "4") -> tuple[RunConfig, Options]:
    """The configuration :func:`train_args` with the same arguments resolves to."""
    return load_config({**parse_sets([*TINY, *sets]), "method": method, "dataset": "synthetic",
                        "data_root": str(root), "labels": labels})


def cli_command(*args: str) -> list[str]:
    """``sslbench ARGS`` as a subprocess command line of this interpreter."""
    return [sys.executable, "-m", "benchmarks.cli", *args]


def fake_results(suite: Suite, root: Path, failed: frozenset[str] = frozenset()) -> None:
    """An ``eval/summary.json`` for every run of ``suite`` under ``root``; the runs in ``failed`` diverged."""
    for i, run in enumerate(suite.runs):
        common = {"seed": run.seed, "config_hash": f"hash{i}", "training_provenance": {
            "code": {"commit": f"{i:012d}" + "f" * 28, "dirty": i % 2 == 1}, "device": {"type": "cpu"}}}
        if run.path in failed:
            summary = {**common, "status": "failed", "n_cases": 0, "n_empty": 0, "failure": {
                "message": "stage 'train', iteration 3: non-finite loss terms loss=nan"}}
        else:
            summary = {**common, "status": "completed", "dice_mean": 80.0 + i, "jaccard_mean": 70.0, "asd_mean": 2.0,
                       "hd95_mean": 7.0, "nsd_mean": 75.0, "n_cases": 2, "n_empty": 0, "selection": "heldout",
                       "lcc": False, "empty_policy": "penalty", "checkpoint_kind": "heldout_best",
                       "nsd_tolerance_mm": 2.0, "units": {"dice": "%", "jaccard": "%", "asd": "voxel",
                                                          "hd95": "voxel", "nsd": "%"}}
        write_json(root / run.path / "eval" / "summary.json", summary)


def fake_complexity(suite: Suite, folder: Path) -> Path:
    """A ``<method>.json`` of made-up counts (``sslbench complexity --json``) for every method of ``suite``."""
    for method in {run.method for run in suite.runs}:
        write_json(folder / f"{method}.json",
                   {"params": 1, "params_train": 2, "params_inference": 1, "macs": 3, "macs_train": 4})
    return folder
