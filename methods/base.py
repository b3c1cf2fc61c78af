"""The contract between a semi-supervised method and the training harness.

A method says what is special about it and nothing else: which networks it builds, which optimisers it
needs, what one training step computes, and how it predicts. The loop, devices, precision, schedules,
checkpoints and logs belong to the harness, which hands each step a :class:`StepContext`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One training batch, labeled rows first.

    ``image``: float (B, C, X, Y, Z); ``label``: int64 (L, X, Y, Z) for rows ``0..L-1`` only, so that a
    method cannot read the labels of its unlabeled rows. ``labeled_index`` (L,) / ``unlabeled_index``
    (B - L,): int64 CPU tensors, the rows' case indices into :class:`TrainingData` (``None`` outside the
    harness).
    """

    image: Tensor
    label: Tensor
    labeled_index: Tensor | None = None
    unlabeled_index: Tensor | None = None

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
    """A training stage with its own iteration budget, batch composition, learning rate and hand-over.

    Iteration counters (``ctx.iteration``, the lr schedule, validation, checkpoints) restart at 0 in every
    stage; stage names must be unique within a method.

    - ``iterations``: the stage's own budget, capped by the run's ``iterations`` so that a short run
      shortens every stage; ``None`` takes the run's ``iterations``.
    - ``labeled_bs`` / ``unlabeled_bs``: ``None`` takes the run's.
    - ``constant_lr``: every optimiser steps at its base rate in this stage (the run's schedule is ignored).
    - ``reset_optimizers``: the stage starts from fresh optimiser state (momentum, Adam moments and step
      count); otherwise the state carries over from the previous stage (or from its selected checkpoint).
    - ``select_best``: under ``selection: heldout`` the stage validates like the last stage does and the
      next stage starts from its best checkpoint (weights, method state and optimiser state); under
      ``last``, or when no validation was due, the next stage continues from the final weights.
    """

    name: str = "train"
    iterations: int | None = None
    labeled_bs: int | None = None
    unlabeled_bs: int | None = None
    constant_lr: bool = False
    reset_optimizers: bool = False
    select_best: bool = False


@dataclass(frozen=True)
class DatasetInfo:
    """What a method may know of the dataset it trains on, from the dataset's YAML
    (``benchmarks/config/datasets/<name>.yaml``), as nnU-Net's trainer knows its dataset's plans.

    ``family``: the protocol family whose official recipe applies: ``la`` (MRI left atrium), ``pancreas``
    (CT pancreas, either protocol), ``lung`` (CT lung tumour) or ``other`` (synthetic data, new datasets);
    ``spacing``: the layout's default voxel size in mm (X, Y, Z); ``patch``: the dataset's training patch
    (X, Y, Z) in voxels.
    """

    name: str = "synthetic"
    family: Literal["la", "pancreas", "lung", "other"] = "other"
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    patch: tuple[int, int, int] = (112, 112, 80)


@dataclass(frozen=True)
class RunInfo:
    """What :meth:`Method.stages` may plan with: split sizes, the run's budget (``README.md`` of the specs)
    and the dataset.

    ``n_labeled`` / ``n_unlabeled``: training cases (held-out validation cases excluded); ``iterations``:
    the run's ``iterations``; ``budget``: ``official`` or ``uniform``.
    """

    n_labeled: int
    n_unlabeled: int
    iterations: int
    budget: str = "official"
    dataset: DatasetInfo = DatasetInfo()


@dataclass(frozen=True)
class TrainingData:
    """Read-only view of the run's training volumes, for methods that need more than their batches
    (pseudo-labels refreshed over the unlabeled set, fixed crops).

    Arrays are (X, Y, Z) and not writeable: ``labeled[i]`` = (image float32, label uint8) of labeled case
    ``i`` and ``unlabeled[i]`` = the image of unlabeled case ``i``, as indexed by ``Batch.labeled_index`` /
    ``Batch.unlabeled_index``. Unlabeled labels are never exposed; ``unlabeled`` is empty when no stage draws
    unlabeled rows.
    """

    labeled: Sequence[tuple[np.ndarray, np.ndarray]]
    unlabeled: Sequence[np.ndarray]


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
    """What the harness offers a method inside :meth:`Method.training_step`.

    The harness runs ``training_step`` inside the run's precision context (autocast under ``amp: bf16`` /
    ``fp16``; forward passes need no context of their own, losses are computed on ``.float()`` logits), takes
    the optimiser steps and logs the terms: every value is detached and kept on the device, and after the
    iteration all of them are checked for NaN/inf and copied to the CPU at once.
    """

    iteration: int
    """Outer iterations completed in the current stage before this one (``t`` in the specs)."""
    max_iterations: int
    stage: str
    device: torch.device
    data: TrainingData

    def step(self, loss: Tensor, optimizer: str = "main", terms: Mapping[str, Tensor] | None = None) -> None:
        """Zero the optimiser's gradients, back-propagate ``loss`` (outside autocast) and take one optimiser
        step; ``terms`` (the loss's parts, scalars) are logged as by :meth:`log`. A non-finite ``loss`` or
        term stops the run after the iteration, before anything is saved."""

    def log(self, terms: Mapping[str, Tensor]) -> None:
        """Log scalar ``terms`` of this iteration (``log.csv``); a name logged more than once in an iteration
        (e.g. per pass) is logged as the mean of its values."""


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric option, declared with its type: ``Annotated[float, Range(0, 1)]``.

    ``low <= value <= high`` (``<`` at an ``open_*`` end; ``None``: unbounded). Where configuration values
    become options (``benchmarks.config``), every float must also be finite and a value outside its range is
    an error naming the option.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below  # False for NaN

    def describe(self, integer: bool) -> str:
        """``a positive integer``, ``a non-negative number``, ``a number in [0, 1)``..."""
        kind = "integer" if integer else "number"
        positive = self.low == 0 and self.open_low or integer and self.low == 1 and not self.open_low
        if self.high is None and (positive or self.low == 0):
            return f"a {'positive' if positive else 'non-negative'} {kind}"
        if self.high is None:
            return f"{'an' if integer else 'a'} {kind} {'>' if self.open_low else '>='} {self.low:g}"
        low = "(-inf" if self.low is None else f"{'(' if self.open_low else '['}{self.low:g}"
        return f"a {kind} in {low}, {self.high:g}{')' if self.open_high else ']'}"


#: Shorthands of the common option ranges.
NonNegative = Annotated[float, Range(0)]
Positive = Annotated[float, Range(0, open_low=True)]
Fraction = Annotated[float, Range(0, 1)]
Probability = Annotated[float, Range(0, 1, open_high=True)]
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]


@dataclass
class Options:
    """Base of every method's options; subclasses add typed fields with defaults.

    Every numeric field declares its allowed values (:class:`Range`, e.g. ``lambda_: NonNegative = 1e-3``).
    """


class Method(nn.Module):
    """Base class of every method. Subclasses set ``name``, ``paper``, ``label``, ``Options`` and implement
    :meth:`training_step` and :meth:`segmenter`.

    State kept across iterations (teachers, memories, pseudo-labels) must be in the ``state_dict``
    (parameters, buffers or ``get_extra_state``): checkpoints resume from it alone.
    """

    name: ClassVar[str]
    paper: ClassVar[str]
    #: Display name in tables and figures (e.g. ``UA-MT``), beside the citation ``paper``.
    label: ClassVar[str]
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
    def auto_options(cls, dataset: DatasetInfo) -> dict[str, Any]:
        """The values that options set to ``auto`` take on ``dataset`` (e.g. ``{"recipe": "pancreas"}``),
        resolved before preset bundles apply and recorded in the run's ``config.yaml``."""
        return {}

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        """Run-level settings of the official recipe on ``dataset`` (e.g. ``iterations``), below user settings."""
        return {}

    def stages(self, run: RunInfo) -> tuple[Stage, ...]:
        """The training stages, planned once the split is known (e.g. epochs converted to iterations)."""
        return (Stage(),)

    def optimizers(self, main: OptimizerSpec) -> dict[str, OptimizerSpec]:
        """``main`` is the run's configured optimiser over no parameters; fill them in and add others."""
        params = [p for p in self.parameters() if p.requires_grad]
        return {"main": dataclasses.replace(main, params=params)}

    def segmenter(self) -> nn.Module:
        """The network that is evaluated and counted (``params`` in ``sslbench complexity``)."""
        raise NotImplementedError

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        """Compute the losses of one outer iteration, take its optimiser steps through ``ctx.step`` and log
        any further scalars through ``ctx.log``."""
        raise NotImplementedError

    def on_stage_start(self, ctx: StepContext) -> None:
        """Called before the first iteration of every stage (``ctx.iteration == 0``, ``ctx.stage`` the new
        stage), after the previous stage's selected checkpoint was restored; also when a run resumes exactly
        at that boundary, so it must depend only on the weights, the data and the torch RNG, which the
        harness seeds from (seed, stage). A teacher initialised from the student belongs here.
        """

    def after_step(self, ctx: StepContext) -> None:
        """Called after each outer iteration (EMA teachers and the like)."""

    def predict(self, x: Tensor) -> Tensor:
        """Logits ``(N, K, X, Y, Z)`` for inference; called in eval mode."""
        return self.segmenter()(x)

    def training_forward(self, x: Tensor) -> Any:
        """One forward pass of the whole training-time network (every decoder and head; no teacher or
        discriminator), counted as ``macs_train`` by ``sslbench complexity``. Default: :meth:`predict`."""
        return self.predict(x)

    def feature_maps(self, x: Tensor) -> dict[str, Tensor]:
        """Named feature maps ``(N, C, X, Y, Z)`` to visualise over training (Fig. 6), in eval mode;
        empty for methods that expose none."""
        return {}
