"""Semi-supervised segmentation methods, registered by name (:mod:`methods.registry`).

A method is one module defining a :class:`~methods.base.Method` subclass decorated with
:func:`~methods.registry.register`; importing this package imports, and so registers, every built-in method.
"""

from __future__ import annotations

from . import admt, asenet, bcp, caml, dtc, fussnet, lefed, mcnet_plus, sassnet, ssnet, uamt, vnet  # noqa: F401  (registers them)
from .base import Batch, DatasetInfo, Method, OptimizerSpec, Options, RunInfo, Stage, StepContext, TrainingData
from .registry import UnknownMethodError, available_methods, get_method, register

__all__ = [
    "Batch",
    "DatasetInfo",
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
