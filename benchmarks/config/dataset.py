"""Datasets, one YAML file each: ``benchmarks/config/datasets/<name>.yaml`` (built in) or any file named by its
path (``--dataset data/kits19/dataset.yaml``, written by ``sslbench prepare nnunet``), as nnU-Net describes a
dataset by its ``dataset.json``. Keys:

- ``name``: the dataset's name in run directories and tables (letters, digits, ``_``; a built-in file's stem);
- ``family``: the protocol family whose method recipes apply (:class:`methods.base.DatasetInfo`);
- ``layout``: where cases and lists live under the data root (:class:`~benchmarks.data.layouts.Layout`
  fields: ``name``, ``case_pattern``, ``train_lists``, ``test_lists``, ``spacing``, ``manifest``);
- ``marker``: the file whose presence marks a complete dataset (default: the last test list, which
  ``sslbench prepare`` writes last);
- ``table``: the main table of the dataset: ``number`` (the paper's table; none: no published values),
  ``stem`` (file stem, default ``table_<name>``), ``title`` (default ``<name> dataset``), ``notes`` (footer lines);
- ``prepare``: how to make the dataset, named in the error when its files are missing;
- ``nsd_tolerance_mm``: the protocol's NSD (surface Dice) tolerance in mm, a number >= 0; scoring only, so in
  no run configuration or hash (none: NSD is not scored);
- ``run``: run-configuration defaults (``data_root``, ``labels``, ``patch``, ``eval``, ...) below a method's
  recipe; ``layout`` is the layout's name, ``data_root`` defaults to the folder of a file given by path.

Every built-in layout is declared by the datasets that use it (:func:`layouts`); two files declaring one
layout name differently are an error.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from methods.base import DatasetInfo, NonNegative

from ..data.layouts import Layout
from ..errors import ConfigError
from .coerce import from_dict
from .yaml_files import read_yaml

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class TableSpec:
    number: str | None = None
    stem: str | None = None
    title: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset YAML, validated (see the module docstring)."""

    layout: Layout
    name: str = ""
    family: Literal["la", "pancreas", "lung", "other"] = "other"
    marker: str | None = None
    table: TableSpec = field(default_factory=TableSpec)
    prepare: str = ""
    nsd_tolerance_mm: NonNegative | None = None
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def marker_file(self) -> str:
        return self.marker or self.layout.test_lists[-1]

    @property
    def table_stem(self) -> str:
        return self.table.stem or f"table_{self.name}"

    @property
    def table_title(self) -> str:
        return self.table.title or f"{self.name} dataset"

    def defaults(self) -> dict[str, Any]:
        """The run-configuration defaults of the dataset."""
        return {"layout": self.layout.name, **self.run}

    def info(self) -> DatasetInfo:
        patch = self.run.get("patch")
        extra = {"patch": tuple(int(s) for s in patch)} if patch else {}
        return DatasetInfo(self.name, self.family, tuple(float(s) for s in self.layout.spacing), **extra)


def available_datasets() -> list[str]:
    """The built-in datasets."""
    return sorted(p.stem for p in DATASETS_DIR.glob("*.yaml"))


def is_dataset_file(name: str) -> bool:
    return str(name).endswith((".yaml", ".yml"))


def load_dataset(name: str) -> DatasetSpec:
    """A built-in dataset by name, or the dataset YAML at path ``name``; ConfigError naming the file or key."""
    path = Path(name) if is_dataset_file(name) else DATASETS_DIR / f"{name}.yaml"
    if not is_dataset_file(name) and name not in available_datasets():
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}, "
                          "or the path of a dataset YAML")
    if not path.is_file():
        raise ConfigError(f"dataset file {path} does not exist")
    return _load(str(path), path.stat().st_mtime_ns, path.parent == DATASETS_DIR)


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int, builtin: bool) -> DatasetSpec:
    data = read_yaml(Path(path), "dataset file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"dataset file {path}: expected a mapping at the top level")
    try:
        spec = from_dict(DatasetSpec, data)
    except ConfigError as exc:
        raise ConfigError(f"dataset file {path}: {exc}") from None
    stem = Path(path).stem
    name = spec.name or stem
    if not NAME.match(name) or (builtin and name != stem):
        raise ConfigError(f"dataset file {path}: invalid name {name!r}; expected letters, digits and '_'"
                          + (f" equal to the file name {stem!r}" if builtin else ""))
    run = dict(spec.run)
    if not builtin:
        run.setdefault("data_root", str(Path(path).parent))
    return replace(spec, name=name, run=run)


@functools.cache
def layouts() -> dict[str, Layout]:
    """Every layout declared by a built-in dataset, by name."""
    out: dict[str, Layout] = {}
    for name in available_datasets():
        layout = load_dataset(name).layout
        if out.setdefault(layout.name, layout) != layout:
            raise ConfigError(f"layout {layout.name!r} is declared differently by {DATASETS_DIR / name}.yaml "
                              "and another dataset file")
    return out
