"""The registry of methods: a method module decorates its :class:`~methods.base.Method` subclass with
:func:`register`; :func:`get_method` and :func:`available_methods` look it up by ``name``."""

from __future__ import annotations

from .base import Method

_REGISTRY: dict[str, type[Method]] = {}


class UnknownMethodError(KeyError):
    """Raised for a method name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``; a class that declares no ``label``
    of its own (a subclass of another method) is labelled by its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    if "label" not in vars(cls):
        cls.label = cls.name
    _REGISTRY[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; available: {', '.join(available_methods())}") from None


def available_methods() -> list[str]:
    return sorted(_REGISTRY)
