"""Evaluate a trained run directory on its test list: ``<run>/eval/per_case.csv`` and ``summary.json``."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import RunConfig, load_config
from ..config.dataset import load_dataset
from ..config.record import RECORD, read_record
from ..errors import CheckpointError, ConfigError
from ..rundir import BEST, EVAL, FINAL, TEST_BEST
from ..runtime import architecture, build_method, resolve_device, training_status
from ..train.checkpoint import load_checkpoint
from ..train.data import load_split, load_test_cases
from ..train.provenance import provenance
from .cases import COLUMNS, evaluate_cases, write_evaluation
from .inference import Inferer

#: Settings an evaluation may change without retraining.
EVAL_KEYS = frozenset({"eval", "data_root", "device"})
#: Checkpoint file -> the kind of checkpoint it is (``checkpoint_kind`` of a summary).
CHECKPOINT_KINDS = {BEST: "heldout_best", FINAL: "last", TEST_BEST: "test_best"}
#: ``--checkpoint`` names -> files.
CHECKPOINT_NAMES = {"best": BEST, "final": FINAL, "test_best": TEST_BEST}


def evaluate_run(
    run_dir: str | Path,
    checkpoint: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score a run's checkpoint on the test cases with the protocol's sliding window.

    ``checkpoint``: ``auto`` (the run's selection: the held-out-best checkpoint under ``selection: heldout``,
    the test-best oracle under ``test_best``, else the final one; for a diverged training, whose
    ``status.json`` says ``failed``, a ``failed`` summary and no score, also for ``final``), ``best``,
    ``final``, ``test_best`` or a path. ``overrides`` may change only ``eval.*``, ``data_root`` and
    ``device``. Results go to ``out`` (default ``<run>/eval`` for ``auto``, ``<run>/eval_<name>`` otherwise).
    The summary's ``checkpoint_kind`` says which checkpoint was scored: ``heldout_best``, ``last``,
    ``test_best`` (an oracle selected on the test set) or ``file``.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - EVAL_KEYS)
    if bad:
        raise ConfigError(f"evaluation cannot change {', '.join(bad)}; only {', '.join(sorted(EVAL_KEYS))}")
    recorded, run_hash = record.settings, record.hash
    config, options = load_config({**recorded, **overrides,
                                   "eval": {**recorded.get("eval", {}), **overrides.get("eval", {})}})
    name = EVAL if checkpoint == "auto" else f"{EVAL}_{Path(checkpoint).stem}"
    out_dir = Path(out) if out else run_dir / name
    status = training_status(run_dir)
    if checkpoint in ("auto", "final") and status.get("status") == "failed":  # another one is still scored
        return _record_failed(run_dir, out_dir, config, run_hash, status)
    path = _checkpoint_path(run_dir, checkpoint, config.selection)
    state = load_checkpoint(path, config.method, architecture(config))
    if state.get("config_hash", run_hash) != run_hash:
        raise CheckpointError(f"checkpoint {path} was trained under configuration {state['config_hash']}, "
                              f"not under {run_dir / RECORD} ({run_hash})")
    device = resolve_device(config.device)
    method = build_method(config, options)
    method.load_state_dict(state["method_state"])
    method.to(device).eval()
    show = sys.stderr.isatty() if progress is None else progress
    cases = load_test_cases(config, load_split(config), show)
    tolerance = load_dataset(config.dataset).nsd_tolerance_mm
    per_case = evaluate_cases(method.predict, [(c.id, c.image, c.label, c.spacing) for c in cases],
                              Inferer.from_config(config, device), config.eval.empty_policy, show, tolerance)
    extra = {
        **_identity(config, run_hash, overrides),
        "status": "completed",
        "checkpoint": path.name,
        "checkpoint_kind": CHECKPOINT_KINDS.get(path.name, "file") if path.resolve().parent == run_dir.resolve()
        else "file",
        "checkpoint_sha256": _sha256(path),
        "checkpoint_position": {"stage_index": state["stage_index"], "iteration": state["iteration"]},
        "selection": config.selection,
        "lcc": config.eval.lcc,
        "empty_policy": config.eval.empty_policy,
        "window": list(config.eval.window),
        "strides": list(config.eval.strides),
        "units": {"dice": "%", "jaccard": "%", "asd": "voxel", "hd95": "voxel", "asd_mm": "mm", "hd95_mm": "mm",
                  "nsd": "%"},
        "nsd_tolerance_mm": tolerance,
        "provenance": provenance(device, config.amp),
        "training_provenance": _training_provenance(run_dir),
    }
    return write_evaluation(out_dir, per_case, extra)


def _identity(config: RunConfig, run_hash: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Which run a summary scores: ``config_hash`` is the hash of the run's recorded ``config.yaml``."""
    return {"dataset": config.dataset, "method": config.method, "options": config.options, "labels": config.labels,
            "seed": config.seed, "config_hash": run_hash, "eval_overrides": dict(overrides)}


def _training_provenance(run_dir: Path) -> dict[str, Any] | None:
    """Code version, packages and device the run was trained with (its ``provenance.json``)."""
    path = run_dir / "provenance.json"
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    return {k: recorded.get(k) for k in ("created", "code", "packages", "device", "resumed_from")}


def _record_failed(run_dir: Path, out_dir: Path, config: RunConfig, run_hash: str,
                   status: dict[str, Any]) -> dict[str, Any]:
    """A failed training is not scored: ``summary.json`` says ``failed`` and why; ``per_case.csv`` has no rows."""
    extra = {**_identity(config, run_hash, {}), "status": "failed", "failure": status,
             "provenance": provenance(resolve_device("cpu")), "training_provenance": _training_provenance(run_dir)}
    return write_evaluation(out_dir, pd.DataFrame(columns=list(COLUMNS)), extra)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint_path(run_dir: Path, checkpoint: str, selection: str) -> Path:
    if checkpoint == "auto":
        best = run_dir / {"heldout": BEST, "test_best": TEST_BEST}.get(selection, FINAL)
        return best if best.is_file() else run_dir / FINAL
    if checkpoint in CHECKPOINT_NAMES:
        path = run_dir / CHECKPOINT_NAMES[checkpoint]
    else:
        path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (has the run finished training?)")
    return path
