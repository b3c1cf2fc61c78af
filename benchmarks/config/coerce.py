"""Build typed dataclasses from plain (YAML or command-line) values, with errors that name the key."""

from __future__ import annotations

import dataclasses
import keyword
import math
import types
import typing
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from methods.base import Range

from ..errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {config_key(f.name): f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {_join(where, unknown[0])!r}; valid keys: {', '.join(sorted(fields))}")
    values = {fields[key]: coerce(value, hints[fields[key]], _join(where, key)) for key, value in data.items()}
    return cls(**values)


def config_key(name: str) -> str:
    """A field named after a Python keyword plus ``_`` (PEP 8: ``lambda_``) is spelled without the ``_``."""
    return name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name


def to_dict(obj: Any) -> Any:
    """Plain, YAML-serialisable view of a (nested) dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {config_key(f.name): to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert ``value`` to type ``hint`` (bool, int, float, str, Literal, Optional, tuple, list, dict, dataclass,
    ``Annotated[..., Range(...)]``); floats must be finite."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *extras = get_args(hint)
        converted = coerce(value, base, key)
        for bounds in extras:
            if isinstance(bounds, Range) and converted not in bounds:
                raise ConfigError(f"invalid value {value!r} for {key!r}; expected {bounds.describe(base is int)}")
        return converted
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"invalid value {value!r} for {key!r}")
    if origin is Literal:
        choices = get_args(hint)
        if value in choices:
            return value
        raise ConfigError(f"invalid value {value!r} for {key!r}; expected one of {', '.join(map(repr, choices))}")
    if origin in (tuple, list):
        args = get_args(hint)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a list")
        if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected {len(args)} values")
        item_types = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else list(args)
        items = [coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a mapping")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"invalid value {value!r} for {key!r}; expected true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected an integer")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected an integer") from None
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"invalid value {value!r} for {key!r}; expected a finite number")
        return number
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"invalid value {value!r} for {key!r}; expected a string")
    raise ConfigError(f"{key!r}: unsupported option type {hint!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
