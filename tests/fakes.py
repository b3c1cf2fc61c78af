"""Test doubles shared by the test suite (importable as ``fakes``: ``pythonpath = ["tests"]`` in pyproject)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from methods.base import TrainingData


class FakeContext:
    """A CPU :class:`methods.base.StepContext` for calling ``Method.training_step`` outside the harness.

    Every ``step`` is recorded in ``steps`` as ``(optimizer, loss.item())``. When ``optimizers`` holds the
    named optimiser, the step is also taken as the harness takes it (``benchmarks/train/context.py``):
    zero the gradients, back-propagate ``loss``, step; otherwise nothing is back-propagated and no weight
    changes. ``autocast()`` is a disabled CPU autocast; ``data`` defaults to an empty :class:`TrainingData`.
    """

    def __init__(
        self,
        iteration: int = 0,
        max_iterations: int = 10,
        stage: str = "train",
        optimizers: dict[str, torch.optim.Optimizer] | None = None,
        data: TrainingData | None = None,
    ) -> None:
        self.iteration = iteration
        self.max_iterations = max_iterations
        self.stage = stage
        self.device = torch.device("cpu")
        self.optimizers = dict(optimizers or {})
        self.data = data if data is not None else TrainingData([], [])
        self.steps: list[Any] = []

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast("cpu", enabled=False)

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        self.steps.append((optimizer, loss.item()))
        opt = self.optimizers.get(optimizer)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
