"""Semi-supervised segmentation methods, registered by name.

A method is one module defining a :class:`~methods.base.Method` subclass decorated with
:func:`register`; importing this package registers every built-in method.
"""

from __future__ import annotations

from .base import Batch, Method, OptimizerSpec, Options, RunInfo, Stage, StepContext, TrainingData

_REGISTRY: dict[str, type[Method]] = {}


class UnknownMethodError(KeyError):
    """Raised for a method name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; available: {', '.join(available_methods())}") from None


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


from . import admt, asenet, bcp, caml, dtc, fussnet, lefed, mcnet_plus, sassnet, ssnet, uamt, vnet  # noqa: F401  (registers the built-in methods)

__all__ = [
    "Batch",
    "Method",
    "OptimizerSpec",
    "Options",
    "RunInfo",
    "Stage",
    "StepContext",
    "TrainingData",
    "UnknownMethodError",
    "available_methods",
    "get_method",
    "register",
]
