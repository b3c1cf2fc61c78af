"""Load, merge and validate run configurations (see :mod:`benchmarks.config.schema`)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

import methods
from methods.base import Method, Options

from ..errors import ConfigError
from .coerce import from_dict, to_dict
from .schema import CHANGED_DEFAULTS, OPERATIONAL_KEYS, SCHEMA_VERSION, UNIFORM_ITERATIONS, RunConfig

__all__ = [
    "RunConfig",
    "available_datasets",
    "config_hash",
    "legacy_hash",
    "load_config",
    "migrate",
    "nsd_tolerance",
    "parse_sets",
    "parse_value",
    "read_yaml",
    "resolve_options",
    "run_dir_name",
    "schema_defaults",
]

_RUN_KEYS = {f.name for f in dataclasses.fields(RunConfig)}
#: Keys of a dataset YAML that describe how the protocol is scored, not a run: kept out of the run configuration
#: (and so out of every configuration hash).
PROTOCOL_KEYS = frozenset({"nsd_tolerance_mm"})


def available_datasets() -> list[str]:
    folder = resources.files(__package__) / "datasets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def dataset_defaults(name: str) -> dict[str, Any]:
    """The YAML defaults of a built-in dataset protocol."""
    if name not in available_datasets():
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    text = (resources.files(__package__) / "datasets" / f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def nsd_tolerance(name: str) -> float:
    """The NSD tolerance in mm of a built-in dataset protocol (``nsd_tolerance_mm`` of its YAML)."""
    value = dataset_defaults(name).get("nsd_tolerance_mm")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ConfigError(f"dataset {name!r}: invalid value {value!r} for 'nsd_tolerance_mm'; expected a number >= 0")
    return float(value)


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


def parse_value(key: str, raw: str) -> Any:
    """The YAML value of ``--set key=raw`` (``""`` for an empty one); a syntax error names the key and value."""
    try:
        return yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: invalid value {raw!r} ({_yaml_problem(exc, lines=False)})") from None


def read_yaml(path: Path, what: str = "") -> Any:
    """Parse the YAML file ``path``; a syntax error names the file, line and column (``what``: e.g. "config file")."""
    name = f"{what} {path}" if what else str(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML ({_yaml_problem(exc, lines=True)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} is unreadable ({exc})") from None


def _yaml_problem(exc: yaml.YAMLError, lines: bool) -> str:
    """PyYAML's complaint in one line: ``line 2, column 1: found character '\\t' that cannot start any token``."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return problem
    return f"{f'line {mark.line + 1}, ' if lines else ''}column {mark.column + 1}: {problem}"


def resolve_options(method_cls: type[Method], raw: Mapping[str, Any]) -> Options:
    """Method options: preset bundles (e.g. ``variant``) first, then the explicitly given values."""
    values: dict[str, Any] = {}
    defaults = method_cls.Options()
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
    dataset = user.get("dataset", merged["dataset"])
    merged = _merge(merged, {k: v for k, v in dataset_defaults(dataset).items() if k not in PROTOCOL_KEYS})
    method_name = user.get("method", merged["method"])
    try:
        method_cls = methods.get_method(method_name)
    except methods.UnknownMethodError as exc:
        raise ConfigError(str(exc)) from None
    options = resolve_options(method_cls, user.get("options", {}))
    merged = _merge(merged, method_cls.run_defaults(options))
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

    Every preset option of the method (``variant``, LeFeD's ``ablation``) that differs from its default
    is appended to the method name, e.g. ``lefed-official`` or ``lefed-IL+DL``.
    """
    cls = methods.get_method(config.method)
    defaults = to_dict(cls.Options())
    suffixes = [str(config.options.get(key)) for key in cls.presets if config.options.get(key) != defaults.get(key)]
    name = "-".join([config.method, *suffixes])
    labels = config.labels.replace("%", "pct")
    return Path(config.dataset) / name / f"labels{labels}" / f"seed{config.seed}"


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
