"""Building a run's method and device from its configuration (shared by training and evaluation)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import methods
from methods.base import Method, Options

from .config import RunConfig, load_config
from .cpu_bf16 import bf16_kernel_context
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


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextmanager
def autocast(amp: str, device: torch.device | str) -> Iterator[None]:
    """The precision context of ``amp`` (the run's key): autocast to bf16 / fp16 on ``device``, or nothing
    under ``off``. bf16 on a CPU whose oneDNN convolutions fail their self-check also runs PyTorch's native
    convolution kernels inside (:mod:`benchmarks.cpu_bf16`); backward passes taken inside are covered too."""
    if amp == "off":
        yield
        return
    with bf16_kernel_context(amp, device), torch.autocast(torch.device(device).type, dtype=_AMP_DTYPES[amp]):
        yield


def build_method(config: RunConfig, options: Options) -> Method:
    cls = methods.get_method(config.method)
    return cls(options, in_channels=config.in_channels, num_classes=config.num_classes, filters=config.filters)


def architecture(config: RunConfig) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into a run's networks."""
    return {"in_channels": config.in_channels, "num_classes": config.num_classes, "filters": config.filters,
            "options": dict(config.options)}


def run_config(run_dir: Path) -> tuple[RunConfig, Options]:
    """The configuration recorded in ``run_dir/config.yaml`` (migrated to the current schema)."""
    from .config.record import read_record

    return load_config(read_record(Path(run_dir)).settings)


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
