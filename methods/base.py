"""The contract between a semi-supervised method and the training harness.

A method says what is special about it and nothing else: which networks it builds, which optimisers it
needs, what one training step computes, and how it predicts. The loop, devices, precision, schedules,
checkpoints and logs belong to the harness, which hands each step a :class:`StepContext`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One training batch, labeled rows first.

    ``image``: float (B, C, X, Y, Z); ``label``: int64 (L, X, Y, Z) for rows ``0..L-1`` only, so that a
    method cannot read the labels of its unlabeled rows.
    """

    image: Tensor
    label: Tensor

    @property
    def labeled_bs(self) -> int:
        return self.label.shape[0]

    @property
    def labeled(self) -> Tensor:
        return self.image[: self.labeled_bs]

    @property
    def unlabeled(self) -> Tensor:
        return self.image[self.labeled_bs :]


@dataclass(frozen=True)
class Stage:
    """A training stage with its own iteration budget and batch composition.

    ``iterations=None`` takes the run's ``iterations``. Iteration counters restart at 0 in every stage.
    """

    name: str = "train"
    iterations: int | None = None
    labeled_bs: int | None = None
    unlabeled_bs: int | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser a method needs. ``scheduled`` ones follow the run's learning-rate schedule."""

    params: list[nn.Parameter]
    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    scheduled: bool = True


class StepContext(Protocol):
    """What the harness offers a method inside :meth:`Method.training_step`."""

    iteration: int
    """Outer iterations completed in the current stage before this one (``t`` in the specs)."""
    max_iterations: int
    stage: str
    device: torch.device

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed-precision context for forward passes (a no-op when AMP is off)."""

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        """Zero the optimiser's gradients, back-propagate ``loss`` and take one optimiser step.

        ``terms`` (the loss's parts) are checked for NaN/inf first; a non-finite term stops the run.
        """


@dataclass
class Options:
    """Base of every method's options; subclasses add typed fields with defaults."""


class Method(nn.Module):
    """Base class of every method. Subclasses set ``name``, ``paper``, ``Options`` and implement
    :meth:`training_step` and :meth:`segmenter`.
    """

    name: ClassVar[str]
    paper: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    #: Named option bundles, e.g. ``{"variant": {"paper": {...}, "official": {...}}}``: setting the option
    #: ``variant`` applies its bundle first, explicit options win.
    presets: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {}

    def __init__(self, options: Options, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__()
        self.options = options
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.filters = filters

    @classmethod
    def run_defaults(cls, options: Options) -> dict[str, Any]:
        """Run-level settings of the official recipe (e.g. ``iterations``), below user settings."""
        return {}

    def stages(self) -> tuple[Stage, ...]:
        return (Stage(),)

    def optimizers(self, main: OptimizerSpec) -> dict[str, OptimizerSpec]:
        """``main`` is the run's configured optimiser over no parameters; fill them in and add others."""
        params = [p for p in self.parameters() if p.requires_grad]
        return {"main": dataclasses.replace(main, params=params)}

    def segmenter(self) -> nn.Module:
        """The network that is evaluated and counted (``params`` in ``sslbench complexity``)."""
        raise NotImplementedError

    def training_step(self, ctx: StepContext, batch: Batch) -> dict[str, Tensor]:
        """Compute the losses of one outer iteration and take its optimiser steps through ``ctx.step``.

        Returns the detached loss terms to log (scalars).
        """
        raise NotImplementedError

    def after_step(self, ctx: StepContext) -> None:
        """Called after each outer iteration (EMA teachers and the like)."""

    def predict(self, x: Tensor) -> Tensor:
        """Logits ``(N, K, X, Y, Z)`` for inference; called in eval mode."""
        return self.segmenter()(x)
