"""Small pieces shared by several methods: exception-safe switches of a module's mode, gradients and
BatchNorm statistics, and clipped Gaussian input noise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside the block, back in its previous mode after it."""
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Exclude ``module``'s parameters from autograd inside the block (gradients still flow through it to its
    inputs); each parameter's ``requires_grad`` is restored after it."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


@contextmanager
def batch_statistics_only(module: nn.Module) -> Iterator[None]:
    """Train-mode BatchNorm layers of ``module`` normalise with batch statistics and leave their running
    statistics (and counters) untouched."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, value in zip(norms, saved):
            m.track_running_stats = value


def full_precision(x: Tensor) -> torch.autocast:
    """Autocast off on ``x``'s device: the block computes in the precision of its inputs (float32 for losses
    the official code computes in float32) although the harness runs the step under ``amp``."""
    return torch.autocast(x.device.type, enabled=False)


def add_clipped_noise(x: Tensor, std: float, clip: float) -> Tensor:
    """``x + clamp(N(0, std^2), -clip, clip)``, one draw per element from torch's global generator."""
    return x + torch.clamp(torch.randn_like(x) * std, -clip, clip)
