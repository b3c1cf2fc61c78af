"""The run configuration: typed, validated, every key documented.

A run's settings are merged from (lowest first) the defaults below, the ``run`` section of the dataset's YAML
(:mod:`benchmarks.config.dataset`), the method's official recipe on that dataset (:meth:`Method.run_defaults`),
a user YAML file and ``--set key=value`` overrides. Unknown keys and invalid values raise :class:`ConfigError`
naming the key; every numeric key declares its allowed values (:class:`~methods.base.Range`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from methods.base import Fraction, NonNegative, NonNegativeInt, Positive, PositiveInt, Probability, Range


@dataclass
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Positive = 0.01
    momentum: Probability = 0.9
    weight_decay: NonNegative = 1e-4


@dataclass
class ScheduleConfig:
    """``step``: lr * gamma^floor(t / step_size); ``poly``: lr * (1 - t / T)^power; ``constant``."""

    name: Literal["step", "poly", "constant"] = "step"
    gamma: Annotated[float, Range(0, 1, open_low=True)] = 0.1
    step_size: PositiveInt = 2500
    power: NonNegative = 0.9


@dataclass
class EvalConfig:
    """Sliding-window inference and scoring (``protocols.md`` sections 8-9), the same for validation,
    evaluation and figures (:class:`~benchmarks.evaluate.inference.Inferer`, under the run's ``amp``).
    ``batch_size``: windows per forward (4; the official code's is 1, same masks up to rounding)."""

    window: tuple[PositiveInt, PositiveInt, PositiveInt] = (112, 112, 80)
    strides: tuple[PositiveInt, PositiveInt, PositiveInt] = (18, 18, 4)
    batch_size: PositiveInt = 4
    lcc: bool = False
    empty_policy: Literal["penalty", "official_zero", "nan"] = "penalty"


@dataclass
class SpeedConfig:
    """How a run executes, not what it learns (``benchmarks/README.md``); left out of the config hash.

    - ``data``: where training patches come from. ``memory``: volumes loaded once, NumPy augmentation in
      the loader (``num_workers`` processes); ``hdf5``: every sample re-read from its HDF5 file in the
      loader, as the official code does (the benchmark's reference mode); ``device``: volumes kept on the
      training device, crop/rot90/flip done there in torch (no loader). All three give identical batches.
    - ``channels_last``: networks and device-side batches in ``torch.channels_last_3d`` memory format.
    - ``compile``: ``torch.compile`` every network of the method in place with this mode (``off``: eager;
      ``reduce-overhead`` adds CUDA graphs on a GPU).
    """

    data: Literal["memory", "hdf5", "device"] = "memory"
    channels_last: bool = False
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"


@dataclass
class RunConfig:
    """Everything that defines one training run and its evaluation."""

    #: A built-in dataset (``benchmarks/config/datasets/<name>.yaml``) or the path of a dataset YAML.
    dataset: str = "synthetic"
    data_root: str = "data/synthetic"
    layout: str = "prepared"
    method: str = "vnet"
    options: dict[str, Any] = field(default_factory=dict)
    labels: str = "8"
    labeled_file: str | None = None
    unlabeled_file: str | None = None
    #: ``heldout``: best on held-out training cases (default); ``last``: final checkpoint; ``test_best``
    #: (literature mode): best Dice on the test set, an optimistic oracle (``protocols.md`` section 10).
    selection: Literal["heldout", "last", "test_best"] = "heldout"
    validation: NonNegativeInt = 0
    val_every: PositiveInt = 200
    val_start: Fraction = 0.2
    seed: NonNegativeInt = 1337
    budget: Literal["official", "uniform"] = "official"
    iterations: PositiveInt = 6000
    labeled_bs: PositiveInt = 2
    unlabeled_bs: NonNegativeInt = 2
    patch: tuple[PositiveInt, PositiveInt, PositiveInt] = (112, 112, 80)
    rotflip: bool = True
    in_channels: PositiveInt = 1
    num_classes: Annotated[int, Range(2)] = 2
    filters: PositiveInt = 16
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    amp: Literal["off", "bf16", "fp16"] = "off"
    device: str = "auto"
    deterministic: bool = True
    num_workers: NonNegativeInt = 0
    checkpoint_every: PositiveInt = 200
    #: At the end of training, delete ``checkpoint_latest.pt`` and earlier stages' best checkpoints and keep
    #: only the weights in ``checkpoint_best.pt`` and ``checkpoint_final.pt`` (what evaluation, ``predict`` and
    #: a resume of the finished run read): about a third of the disk for SGD-only methods and less with Adam.
    prune_checkpoints: bool = False
    #: Outer iterations (counted from 1 within each stage) after which the weights are kept in
    #: ``snapshots/<stage>_<iteration>.pt`` for feature figures (Fig. 6); they do not change training.
    snapshots: tuple[PositiveInt, ...] = ()
    eval: EvalConfig = field(default_factory=EvalConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)


#: Keys that change how a run executes but not what it computes; left out of the config hash.
OPERATIONAL_KEYS = frozenset({"device", "num_workers", "checkpoint_every", "prune_checkpoints", "snapshots", "speed"})

#: Iterations of every method's main stage under ``budget: uniform`` (README of the specs).
UNIFORM_ITERATIONS = 15000

#: Version of this schema, recorded as ``schema_version`` in every run's ``config.yaml`` (version 0: records
#: written before versions were). A key added with a default that keeps the old behaviour needs no new
#: version; changing a default does: bump the version and record the previous default in
#: :data:`CHANGED_DEFAULTS`, so that older runs keep their configuration and hash.
SCHEMA_VERSION = 1

#: ``{version: {dotted key: its default before that version}}``; ``options.<key>`` is a method option (of
#: every method that has it).
CHANGED_DEFAULTS: dict[int, dict[str, Any]] = {}
