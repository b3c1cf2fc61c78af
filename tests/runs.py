"""Helpers for tests that train and score real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.cli import main
from benchmarks.config import RunConfig
from benchmarks.evaluate.run import evaluate_run
from benchmarks.runtime import architecture, build_method
from benchmarks.train.checkpoint import save_checkpoint
from benchmarks.train.trainer import FINAL, prepare_run_dir
from methods.base import Options


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
