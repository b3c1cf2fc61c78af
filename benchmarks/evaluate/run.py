"""Evaluate a trained run directory on its test list: ``<run>/eval/per_case.csv`` and ``summary.json``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config import config_hash, load_config
from ..errors import CheckpointError, ConfigError
from ..runtime import architecture, build_method, resolve_device
from ..train.checkpoint import load_checkpoint
from ..train.data import load_split, load_test_cases
from ..train.provenance import provenance
from ..train.trainer import BEST, FINAL
from .cases import evaluate_cases, write_evaluation

#: Settings an evaluation may change without retraining.
EVAL_KEYS = frozenset({"eval", "data_root", "device"})


def evaluate_run(
    run_dir: str | Path,
    checkpoint: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score a run's checkpoint on the test cases with the protocol's sliding window.

    ``checkpoint``: ``auto`` (the held-out-best checkpoint under ``selection: heldout``, else the final
    one), ``best``, ``final`` or a path. ``overrides`` may change only ``eval.*``, ``data_root`` and
    ``device``. Results go to ``out`` (default ``<run>/eval`` for ``auto``, ``<run>/eval_<name>`` otherwise).
    """
    run_dir = Path(run_dir)
    record = run_dir / "config.yaml"
    if not record.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {record.name} is missing")
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - EVAL_KEYS)
    if bad:
        raise ConfigError(f"evaluation cannot change {', '.join(bad)}; only {', '.join(sorted(EVAL_KEYS))}")
    recorded = yaml.safe_load(record.read_text())
    config, options = load_config({**recorded, **overrides, "eval": {**recorded["eval"], **overrides.get("eval", {})}})
    path = _checkpoint_path(run_dir, checkpoint, config.selection)
    state = load_checkpoint(path, config.method, architecture(config))
    device = resolve_device(config.device)
    method = build_method(config, options)
    method.load_state_dict(state["method_state"])
    method.to(device).eval()
    show = sys.stderr.isatty() if progress is None else progress
    cases = load_test_cases(config, load_split(config), show)
    per_case = evaluate_cases(
        method.predict, [(c.id, c.image, c.label, c.spacing) for c in cases], config.eval.window,
        config.eval.strides, config.eval.batch_size, device, config.eval.lcc, config.eval.empty_policy, show,
    )
    name = "eval" if checkpoint == "auto" else f"eval_{Path(checkpoint).stem}"
    extra = {
        "dataset": config.dataset,
        "method": config.method,
        "options": config.options,
        "labels": config.labels,
        "seed": config.seed,
        "config_hash": config_hash(config),
        "checkpoint": path.name,
        "checkpoint_position": {"stage_index": state["stage_index"], "iteration": state["iteration"]},
        "selection": config.selection,
        "lcc": config.eval.lcc,
        "empty_policy": config.eval.empty_policy,
        "window": list(config.eval.window),
        "strides": list(config.eval.strides),
        "units": {"dice": "%", "jaccard": "%", "asd": "voxel", "hd95": "voxel", "asd_mm": "mm", "hd95_mm": "mm"},
        "provenance": provenance(device),
    }
    return write_evaluation(Path(out) if out else run_dir / name, per_case, extra)


def _checkpoint_path(run_dir: Path, checkpoint: str, selection: str) -> Path:
    if checkpoint == "auto":
        best = run_dir / BEST
        return best if selection == "heldout" and best.is_file() else run_dir / FINAL
    if checkpoint in ("best", "final"):
        path = run_dir / (BEST if checkpoint == "best" else FINAL)
    else:
        path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (has the run finished training?)")
    return path
