"""Helpers for tests that run the Snakemake workflow (importable as ``workflows``): its environment and the
reduced smoke suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def workflow_env(extra_path: Path | None = None) -> dict[str, str]:
    """This environment with the virtual environment's ``bin`` first on ``PATH``, one OpenMP thread, and
    ``extra_path`` (if any) first on ``PYTHONPATH``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def small_suite(folder: Path, name: str, methods: list[str], **update: object) -> None:
    """The smoke suite reduced to the main table's ``methods``, renamed ``name``; written to ``folder/name.yaml``."""
    spec = yaml.safe_load((REPO / "benchmarks/config/suites/smoke.yaml").read_text())
    for key in ("ablation", "t_sweep", "lambda_sweep", "encodings", "qualitative", "feature_snapshots"):
        spec.pop(key)
    spec.update(name=name, methods=methods, **update)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
