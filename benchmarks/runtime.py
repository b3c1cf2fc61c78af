"""Building a run's method and device from its configuration (shared by training and evaluation)."""

from __future__ import annotations

from typing import Any

import torch

import methods
from methods.base import Method, Options

from .config import RunConfig
from .errors import ConfigError


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
