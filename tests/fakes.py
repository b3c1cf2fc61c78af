"""Test doubles shared by the test suite (importable as ``fakes``: ``pythonpath = ["tests"]`` in pyproject)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from methods.base import Batch, Method, TrainingData


class FakeContext:
    """A CPU :class:`methods.base.StepContext` for calling ``Method.training_step`` outside the harness.

    Every ``step`` is recorded in ``steps`` as ``(optimizer, loss.item())``. When ``optimizers`` holds the
    named optimiser, the step is also taken as the harness takes it (``benchmarks/train/context.py``):
    zero the gradients, back-propagate ``loss``, step; otherwise nothing is back-propagated and no weight
    changes. Logged terms (``step``'s and ``log``'s) are kept in ``logged``; :meth:`run` returns them as the
    harness logs them. Runs in fp32; ``data`` defaults to an empty :class:`TrainingData`.
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
        self.logged: dict[str, list[Tensor]] = {}

    def run(self, method: Method, batch: Batch) -> dict[str, Tensor]:
        """``method.training_step(self, batch)``; the terms it logged, each averaged over its values."""
        self.logged = {}
        method.training_step(self, batch)
        return {k: torch.stack(v).mean() if len(v) > 1 else v[0] for k, v in self.logged.items()}

    def log(self, terms: Mapping[str, Tensor]) -> None:
        for name, value in terms.items():
            self.logged.setdefault(name, []).append(value.detach())

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        self.steps.append((optimizer, loss.item()))
        self.log(terms or {})
        opt = self.optimizers.get(optimizer)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
