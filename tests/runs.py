"""Helpers for tests that train and score real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.cli import main
from benchmarks.config import RunConfig, load_config
from benchmarks.evaluate.run import evaluate_run
from benchmarks.runtime import architecture, build_method
from benchmarks.train.checkpoint import save_checkpoint
from benchmarks.train.trainer import FINAL, Trainer, prepare_run_dir
from methods.base import Options

#: Settings of the learning check per method, on top of :func:`runs.tiny_synthetic_run` and the method's recipe;
#: methods not listed train with :data:`DEFAULT_BUDGET`. Every budget gained 18 to 57 points on 1 and 2 threads
#: under oneDNN's AVX2 and AVX-512 kernels (``ONEDNN_MAX_CPU_ISA``), so another CPU's rounding does not decide
#: the test. ASE-Net trains its plain V-Net backbone: with 4 filters the DyBAC network's N(0, 1) depthwise
#: kernels barely move in a CPU-sized budget.
DEFAULT_BUDGET: dict[str, Any] = {"labels": "6", "iterations": 40, "optimizer": {"lr": 0.05}, "schedule": {"name": "poly"}}
BUDGETS: dict[str, dict[str, Any]] = {
    "admt": {"labels": "8", "iterations": 60, "optimizer": {"lr": 0.05}, "schedule": {"name": "poly"}},
    "asenet": {"labels": "8", "iterations": 21, "labeled_bs": 4, "unlabeled_bs": 1, "optimizer": {"lr": 1e-2},
               "options": {"backbone": "vnet"}},
    "bcp": {"labels": "4", "iterations": 40, "optimizer": {"lr": 0.05}},
    "caml": {**DEFAULT_BUDGET, "iterations": 24},
    "fussnet": {"labels": "4", "iterations": 20},
    "lefed": {"labels": "4", "iterations": 12},
    "mcnet_plus": {"labels": "8", "unlabeled_bs": 1, "rotflip": False, "iterations": 48, "optimizer": {"lr": 0.1},
                   "schedule": {"name": "poly"}},
    "sassnet": {**DEFAULT_BUDGET, "options": {"d_width": 8}},
    "ssnet": {"labels": "8", "unlabeled_bs": 1, "rotflip": False, "iterations": 36, "optimizer": {"lr": 0.1},
              "schedule": {"name": "poly"}},
    "uamt": {**DEFAULT_BUDGET, "options": {"mc_passes": 2}},
}
#: Test Dice (points) a short training must gain over the network it starts from.
GAIN = 10.0


def evaluate_untrained(config: RunConfig, options: Options, run_dir: Path) -> dict[str, Any]:
    """Summary of ``sslbench evaluate`` for the network a run of ``config`` starts from (no training)."""
    prepare_run_dir(run_dir, config)
    torch.manual_seed(config.seed)
    method = build_method(config, options)
    save_checkpoint(run_dir / FINAL, {"method": config.method, "arch": architecture(config), "stage_index": 0,
                                      "iteration": 0, "method_state": method.state_dict()})
    return evaluate_run(run_dir, progress=False)


def train_with_cli(overrides: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Run ``sslbench train --config FILE`` with ``overrides`` as the file, then score it like ``evaluate``."""
    config_file = run_dir.parent / f"{run_dir.name}.yaml"
    config_file.write_text(yaml.safe_dump(overrides))
    assert main(["train", "--config", str(config_file), "--out", str(run_dir), "--no-progress"]) == 0
    return evaluate_run(run_dir, progress=False)


def tiny_synthetic_run(root: Path, **settings: Any) -> dict[str, Any]:
    """Overrides of a CPU-sized run on the synthetic data at ``root`` (4 filters, 32 x 32 x 16 patches and
    windows, final checkpoint scored), updated with ``settings``."""
    return {"dataset": "synthetic", "data_root": str(root), "filters": 4, "patch": [32, 32, 16], "selection": "last",
            "eval": {"window": [32, 32, 16], "strides": [16, 16, 8]}, **settings}


def dice_before_and_after(overrides: dict[str, Any], tmp_path: Path, cli: bool = False) -> tuple[float, float]:
    """Mean test Dice (%) of the network a run of ``overrides`` starts from and of the run trained into
    ``tmp_path / "run"``, in-process or through ``sslbench train`` (``cli``)."""
    config, options = load_config(overrides)
    before = evaluate_untrained(config, options, tmp_path / "untrained")["dice_mean"]
    if cli:
        return before, train_with_cli(overrides, tmp_path / "run")["dice_mean"]
    Trainer(config, options, tmp_path / "run", progress=False).fit()
    return before, evaluate_run(tmp_path / "run", progress=False)["dice_mean"]
