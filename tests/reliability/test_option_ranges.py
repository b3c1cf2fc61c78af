"""Every numeric key of the run schema and every numeric option of every method declares its allowed values, and
a value outside them (NaN, infinity, below or above the bounds) is an error naming the key and the value."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

import pytest

import methods
from benchmarks.config import RunConfig, load_config, resolve_options
from benchmarks.config.coerce import config_key
from benchmarks.errors import ConfigError
from methods.base import Range


def numeric_keys(cls: type, prefix: str = "") -> Iterator[tuple[str, Any, int | None]]:
    """``(dotted key, hint, items)`` of every int/float field of dataclass ``cls``; ``items``: the length of a tuple
    field (its items' hint is given; ``None`` for a scalar)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if get_origin(hint) in (Union, types.UnionType):
            hint = next(h for h in get_args(hint) if h is not type(None))
        key = prefix + config_key(f.name)
        if dataclasses.is_dataclass(hint):
            yield from numeric_keys(hint, f"{key}.")
        elif get_origin(hint) is tuple:
            items = [h for h in get_args(hint) if h is not Ellipsis]
            if _numeric(items[0]):
                yield key, items[0], len(items)
        elif _numeric(hint):
            yield key, hint, None


def _numeric(hint: Any) -> bool:
    return hint in (int, float) or get_origin(hint) is Annotated


def bad_values(key: str, hint: Any) -> list[Any]:
    """Values just outside the declared range of ``hint`` (and NaN and infinity for a float)."""
    assert get_origin(hint) is Annotated, f"{key!r} declares no range ({hint})"
    base, bounds = get_args(hint)[0], next(a for a in get_args(hint)[1:] if isinstance(a, Range))
    step = 1 if base is int else 1e-3
    out: list[Any] = [math.nan, math.inf, -math.inf] if base is float else []
    if bounds.low is not None:
        out.append(bounds.low if bounds.open_low else bounds.low - step)
    if bounds.high is not None:
        out.append(bounds.high if bounds.open_high else bounds.high + step)
    return out


def cases(cls: type) -> list[tuple[str, Any, Any]]:
    """``(key, value to set, bad value)`` for every numeric key of ``cls``; a tuple gets it in every item."""
    return [(key, value if items is None else [value] * items, value)
            for key, hint, items in numeric_keys(cls) for value in bad_values(key, hint)]


@pytest.mark.parametrize("name", methods.available_methods())
def test_every_method_option_has_a_range_and_out_of_range_values_are_named(name: str) -> None:
    cls = methods.get_method(name)
    checked = cases(cls.Options)
    for key, given, value in checked:
        with pytest.raises(ConfigError) as caught:
            resolve_options(cls, {key: given})
        message = str(caught.value)
        assert message.startswith(f"method {name!r}: invalid value {value!r} for 'options.{key}"), message
        assert "; expected a" in message and "\n" not in message, message
    assert name == "vnet" or checked  # every method but the supervised baseline has numeric options


def test_every_run_key_has_a_range_and_out_of_range_values_are_named() -> None:
    checked = cases(RunConfig)
    for key, given, value in checked:
        *parents, leaf = key.split(".")
        override: dict[str, Any] = {leaf: given}
        for part in reversed(parents):
            override = {part: override}
        with pytest.raises(ConfigError, match=re.escape(f"invalid value {value!r} for '{key}")) as caught:
            load_config(override)
        assert "; expected a" in str(caught.value)
    assert {"optimizer.lr", "schedule.gamma", "val_start", "eval.strides", "snapshots"} <= {k for k, _, _ in checked}


def test_values_inside_the_ranges_are_kept() -> None:
    options = resolve_options(methods.get_method("lefed"), {"lambda": 0, "encoder_dropout": 0.0, "t": 1})
    assert (options.lambda_, options.encoder_dropout, options.t) == (0.0, 0.0, 1)
    config, _ = load_config({"optimizer": {"momentum": 0}, "val_start": 1, "schedule": {"gamma": 1}})
    assert (config.optimizer.momentum, config.val_start, config.schedule.gamma) == (0.0, 1.0, 1.0)
