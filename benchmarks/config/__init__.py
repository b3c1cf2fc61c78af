"""Load, merge and validate run configurations (see :mod:`benchmarks.config.schema`)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import methods
from methods.base import DatasetInfo, Method, Options

from ..errors import ConfigError
from ..rundir import run_subdir
from .coerce import from_dict, to_dict
from .dataset import available_datasets, load_dataset
from .schema import CHANGED_DEFAULTS, OPERATIONAL_KEYS, SCHEMA_VERSION, UNIFORM_ITERATIONS, RunConfig
from .yaml_files import parse_value, read_yaml

__all__ = [
    "RunConfig",
    "available_datasets",
    "config_hash",
    "dataset_info",
    "legacy_hash",
    "load_config",
    "migrate",
    "parse_sets",
    "parse_value",
    "read_yaml",
    "resolve_options",
    "run_dir_name",
    "schema_defaults",
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
        value = parse_value(key, raw)
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
        loaded = read_yaml(path, "config file") or {}
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


def config_hash(config: RunConfig, version: int = SCHEMA_VERSION) -> str:
    """Short hash of everything that determines a run's result: the settings (operational keys left out) that
    differ from :func:`schema_defaults` of ``version``, so that adding a defaulted key or option keeps every
    hash. Version 0 (runs recorded before versions were) hashed every setting: :func:`legacy_hash`."""
    data = {k: v for k, v in to_dict(config).items() if k not in OPERATIONAL_KEYS}
    return _digest(_non_default(data, schema_defaults(config.method, version, type(config))))


def legacy_hash(record: Mapping[str, Any]) -> str:
    """The hash of a version-0 ``config.yaml`` (``record``, as written): every non-operational setting."""
    return _digest({k: v for k, v in record.items() if k not in OPERATIONAL_KEYS})


def schema_defaults(method: str, version: int = SCHEMA_VERSION, schema: type[RunConfig] = RunConfig) -> dict[str, Any]:
    """The defaults of ``schema`` as of ``version`` (:data:`~.schema.CHANGED_DEFAULTS` undone), with
    ``method``'s option defaults under ``options``."""
    defaults = to_dict(schema())
    defaults["options"] = to_dict(methods.get_method(method).Options())
    for key, value in changed_defaults(version).items():
        *parents, leaf = key.split(".")
        node = _section(defaults, parents)
        if node is not None and leaf in node:
            node[leaf] = copy.deepcopy(value)
    return defaults


def migrate(settings: Mapping[str, Any], version: int) -> dict[str, Any]:
    """``settings`` recorded under ``version`` with every default changed since then that it lacks set to its
    value as of ``version`` (:data:`~.schema.CHANGED_DEFAULTS`); other missing keys take the current defaults
    on load."""
    out = copy.deepcopy(dict(settings))
    current = schema_defaults(str(out.get("method", RunConfig.method)))
    for key, value in changed_defaults(version).items():
        *parents, leaf = key.split(".")
        if leaf not in (_section(current, parents) or {}):
            continue
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, copy.deepcopy(value))
    return out


def changed_defaults(version: int) -> dict[str, Any]:
    """``{dotted key: its default as of version}`` for every default changed since ``version``."""
    out: dict[str, Any] = {}
    for changed in sorted((v for v in CHANGED_DEFAULTS if v > version), reverse=True):
        out.update(CHANGED_DEFAULTS[changed])
    return out


def _section(tree: Mapping[str, Any], path: Sequence[str]) -> Any:
    """``tree[path[0]][path[1]]...``, or None where a part is missing."""
    for part in path:
        tree = tree.get(part) if isinstance(tree, Mapping) else None  # type: ignore[assignment]
    return tree


def _non_default(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(value, Mapping) and isinstance(default, Mapping):
            nested = _non_default(value, default)
            if nested:
                out[key] = nested
        elif key not in defaults or value != default:
            out[key] = value
    return out


def _digest(data: Mapping[str, Any]) -> str:
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
    """What the schema's types and ranges cannot say."""
    for key, shape in {"patch": config.patch, "eval.window": config.eval.window}.items():
        if any(s <= 0 or s % 16 for s in shape):
            raise ConfigError(f"invalid value {list(shape)} for {key!r}; every size must be a positive multiple of 16")
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
