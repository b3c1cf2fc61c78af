"""The harness side of :class:`methods.base.StepContext`: AMP, optimiser steps, non-finite checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor

from methods.base import TrainingData

from ..errors import TrainingDiverged

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class HarnessContext:
    """Implements ``StepContext``; the trainer updates ``iteration`` and ``stage`` before every step and sets
    ``data`` (the run's training volumes) once they are loaded."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], device: torch.device, amp: str) -> None:
        self.optimizers = dict(optimizers)
        self.device = device
        self.amp = amp
        self.iteration = 0
        self.max_iterations = 0
        self.stage = ""
        self.data = TrainingData([], [])
        enabled = amp == "fp16" and device.type == "cuda"
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=enabled) for name in self.optimizers}
        self.steps = dict.fromkeys(self.optimizers, 0)

    def autocast(self) -> AbstractContextManager[Any]:
        if self.amp == "off":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_AMP_DTYPES[self.amp])

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        if optimizer not in self.optimizers:
            raise KeyError(f"unknown optimizer {optimizer!r}; the method declared {', '.join(self.optimizers)}")
        check_finite({"loss": loss, **(terms or {})}, self.stage, self.iteration)
        opt, scaler = self.optimizers[optimizer], self.scalers[optimizer]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        self.steps[optimizer] += 1


def check_finite(terms: Mapping[str, Tensor | float], stage: str, iteration: int) -> None:
    """Raise :class:`TrainingDiverged` naming every non-finite term."""
    tensors = {k: torch.as_tensor(v).detach().float().reshape(()).cpu() for k, v in terms.items()}
    if bool(torch.isfinite(torch.stack(list(tensors.values()))).all()):
        return
    bad = {k: float(v) for k, v in tensors.items() if not math.isfinite(float(v))}
    listed = ", ".join(f"{k}={v}" for k, v in bad.items())
    raise TrainingDiverged(f"stage {stage!r}, iteration {iteration}: non-finite loss terms {listed}", stage, iteration, bad)
