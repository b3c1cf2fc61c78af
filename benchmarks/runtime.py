"""Building a run's method and device from its configuration (shared by training and evaluation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

import methods
from methods.base import Method, Options

from .config import RunConfig, load_config
from .errors import ConfigError
from .rundir import STATUS
from .train.checkpoint import load_checkpoint


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"invalid value {name!r} for 'device'; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def build_method(config: RunConfig, options: Options) -> Method:
    cls = methods.get_method(config.method)
    return cls(options, in_channels=config.in_channels, num_classes=config.num_classes, filters=config.filters)


def architecture(config: RunConfig) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into a run's networks."""
    return {"in_channels": config.in_channels, "num_classes": config.num_classes, "filters": config.filters,
            "options": dict(config.options)}


def run_config(run_dir: Path) -> tuple[RunConfig, Options]:
    """The configuration recorded in ``run_dir/config.yaml``."""
    record = Path(run_dir) / "config.yaml"
    if not record.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {record.name} is missing")
    return load_config(yaml.safe_load(record.read_text()))


def restore_method(config: RunConfig, options: Options, checkpoint: Path, device: torch.device) -> Method:
    """The run's method with the weights of ``checkpoint`` (validated against method and architecture),
    on ``device`` in eval mode."""
    state = load_checkpoint(checkpoint, config.method, architecture(config))
    method = build_method(config, options)
    method.load_state_dict(state["method_state"])
    return method.to(device).eval()


def training_status(run_dir: Path) -> dict[str, Any]:
    """The training's ``status.json`` (``{"status": "completed" | "failed", ...}``); ``{}`` when absent (a run
    trained before it existed, or unfinished)."""
    path = Path(run_dir) / STATUS
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); delete it and rerun `sslbench train`") from None
