"""The harness side of :class:`methods.base.StepContext`: precision, optimiser steps, logging and one deferred
non-finite check per iteration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from methods.base import Batch, Method, TrainingData

from ..errors import TrainingDiverged
from ..runtime import autocast


class HarnessContext:
    """Implements ``StepContext``; the trainer updates ``iteration`` and ``stage`` before every step and sets
    ``data`` (the run's training volumes) once they are loaded. :meth:`run_step` runs one outer iteration."""

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
        self._logged: dict[str, list[Tensor]] = {}
        self._unlogged: dict[str, list[Tensor]] = {}  # stepped losses that are not among the logged terms

    def autocast(self) -> AbstractContextManager[Any]:
        """The run's precision context: autocast to ``amp``'s dtype, or nothing under ``amp: off``."""
        return autocast(self.amp, self.device)

    def run_step(self, method: Method, batch: Batch) -> dict[str, float]:
        """``method.training_step`` under the run's precision; returns the iteration's logged terms.

        Every logged term and every stepped loss is checked once, after the step, with a single device sync;
        a non-finite one raises :class:`TrainingDiverged` naming them.
        """
        self._logged, self._unlogged = {}, {}
        with self.autocast():
            method.training_step(self, batch)
        collected = {**self._logged, **self._unlogged}
        if not collected:
            return {}
        values = [torch.stack(v).mean() if len(v) > 1 else v[0] for v in collected.values()]
        terms = dict(zip(collected, torch.stack([v.double().reshape(()) for v in values]).tolist()))
        bad = {k: v for k, v in terms.items() if not math.isfinite(v)}
        if bad:
            listed = ", ".join(f"{k}={v}" for k, v in bad.items())
            raise TrainingDiverged(f"stage {self.stage!r}, iteration {self.iteration}: non-finite loss terms {listed}",
                                   self.stage, self.iteration, bad)
        return {k: terms[k] for k in self._logged}

    def log(self, terms: Mapping[str, Tensor]) -> None:
        for name, value in terms.items():
            self._logged.setdefault(name, []).append(value.detach())

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        if optimizer not in self.optimizers:
            raise KeyError(f"unknown optimizer {optimizer!r}; the method declared {', '.join(self.optimizers)}")
        terms = dict(terms or {})
        self.log(terms)
        if not any(loss is value for value in terms.values()):
            self._unlogged.setdefault(f"loss[{optimizer}]", []).append(loss.detach())
        opt, scaler = self.optimizers[optimizer], self.scalers[optimizer]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        torch.clear_autocast_cache()  # later forwards of this step must cast the updated weights
        self.steps[optimizer] += 1
