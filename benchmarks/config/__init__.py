"""Load, merge and validate run configurations (see :mod:`benchmarks.config.schema`)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import methods
from methods.base import DatasetInfo, Method, Options

from ..errors import ConfigError
from ..rundir import run_subdir
from .coerce import from_dict, to_dict
from .dataset import available_datasets, load_dataset
from .schema import OPERATIONAL_KEYS, UNIFORM_ITERATIONS, RunConfig

__all__ = [
    "RunConfig",
    "available_datasets",
    "config_hash",
    "dataset_info",
    "load_config",
    "parse_sets",
    "resolve_options",
    "run_dir_name",
]

_RUN_KEYS = {f.name for f in dataclasses.fields(RunConfig)}


def dataset_info(config: RunConfig) -> DatasetInfo:
    """What the run's method knows of its dataset (``config.dataset``: a built-in name or a dataset YAML)."""
    return load_dataset(config.dataset).info()


def parse_sets(pairs: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "t=3"]`` -> nested dict. Keys not in the run schema are method options."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        value = yaml.safe_load(raw) if raw else ""
        path = key.split(".")
        if path[0] not in _RUN_KEYS:
            path = ["options", *path]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
        node[path[-1]] = value
    return out


def resolve_options(method_cls: type[Method], raw: Mapping[str, Any], dataset: DatasetInfo | None = None) -> Options:
    """Method options: ``auto`` values resolved on ``dataset`` (:meth:`Method.auto_options`; default: an
    ``other``-family dataset), preset bundles (e.g. ``variant``) next, then the explicitly given values."""
    defaults = method_cls.Options()
    raw = dict(raw)
    for key, value in method_cls.auto_options(dataset or DatasetInfo()).items():
        if raw.get(key, getattr(defaults, key)) == "auto":
            raw[key] = value
    values: dict[str, Any] = {}
    for key, bundles in method_cls.presets.items():
        choice = raw.get(key, getattr(defaults, key))
        if choice not in bundles:
            raise ConfigError(f"invalid value {choice!r} for {key!r}; expected one of {', '.join(map(repr, bundles))}")
        values.update(bundles[choice])
    values.update(raw)
    try:
        return from_dict(method_cls.Options, values, "options")
    except ConfigError as exc:
        raise ConfigError(f"method {method_cls.name!r}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"method {method_cls.name!r}: {exc}") from None


def load_config(
    overrides: Mapping[str, Any] | None = None, config_file: str | Path | None = None
) -> tuple[RunConfig, Options]:
    """Merge defaults < dataset < method recipe < ``config_file`` < ``overrides``; validate."""
    user: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        user = _merge(user, loaded)
    user = _merge(user, dict(overrides or {}))

    merged = to_dict(RunConfig())
    spec = load_dataset(user.get("dataset", merged["dataset"]))
    merged = _merge(merged, spec.defaults())
    method_name = user.get("method", merged["method"])
    try:
        method_cls = methods.get_method(method_name)
    except methods.UnknownMethodError as exc:
        raise ConfigError(str(exc)) from None
    options = resolve_options(method_cls, user.get("options", {}), spec.info())
    merged = _merge(merged, method_cls.run_defaults(options, spec.info()))
    merged = _merge(merged, user)
    if merged.get("budget") == "uniform" and "iterations" not in user:
        merged["iterations"] = UNIFORM_ITERATIONS
    merged["options"] = to_dict(options)
    config = from_dict(RunConfig, merged)
    _validate(config)
    return config, options


def config_hash(config: RunConfig) -> str:
    """Stable short hash of everything that determines a run's result."""
    data = {k: v for k, v in to_dict(config).items() if k not in OPERATIONAL_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def run_dir_name(config: RunConfig) -> Path:
    """``<dataset>/<method>[-<preset>...]/labels<N>/seed<k>``, the default place of a run.

    Every preset option of the method (e.g. ``variant``) that differs from its default on the run's dataset
    is appended to the method name, e.g. ``<method>-official``.
    """
    cls = methods.get_method(config.method)
    info = dataset_info(config)
    defaults = to_dict(resolve_options(cls, {}, info))
    suffixes = [str(config.options.get(key)) for key in cls.presets if config.options.get(key) != defaults.get(key)]
    name = "-".join([config.method, *suffixes])
    return Path(run_subdir(info.name, name, config.labels.replace("%", "pct"), config.seed))


def _validate(config: RunConfig) -> None:
    positive = {
        "iterations": config.iterations,
        "labeled_bs": config.labeled_bs,
        "filters": config.filters,
        "in_channels": config.in_channels,
        "num_classes": config.num_classes,
        "val_every": config.val_every,
        "checkpoint_every": config.checkpoint_every,
        "eval.batch_size": config.eval.batch_size,
        "schedule.step_size": config.schedule.step_size,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a positive integer")
    for key, value in {"unlabeled_bs": config.unlabeled_bs, "validation": config.validation,
                       "num_workers": config.num_workers, "seed": config.seed}.items():
        if value < 0:
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a non-negative integer")
    if config.optimizer.lr <= 0:
        raise ConfigError(f"invalid value {config.optimizer.lr!r} for 'optimizer.lr'; expected a positive number")
    if not 0 <= config.val_start <= 1:
        raise ConfigError(f"invalid value {config.val_start!r} for 'val_start'; expected a fraction in [0, 1]")
    for key, shape in {"patch": config.patch, "eval.window": config.eval.window}.items():
        if any(s <= 0 or s % 16 for s in shape):
            raise ConfigError(f"invalid value {list(shape)} for {key!r}; every size must be a positive multiple of 16")
    if any(i <= 0 for i in config.snapshots):
        raise ConfigError(f"invalid value {list(config.snapshots)} for 'snapshots'; expected positive iterations")
    if any(s <= 0 for s in config.eval.strides):
        raise ConfigError(f"invalid value {list(config.eval.strides)} for 'eval.strides'; expected positive strides")
    if config.selection == "heldout" and config.validation == 0:
        raise ConfigError("selection 'heldout' needs 'validation' > 0 held-out training cases")
    labels = config.labels.rstrip("%")
    if config.labels != "all" and (not labels.isdigit() or int(labels) <= 0):
        raise ConfigError(f"invalid value {config.labels!r} for 'labels'; expected a count (8), a percentage (10%) or all")


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``options`` and ``update``'s non-dict values replace wholesale."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
