"""The resumable driver of ``sslbench prepare``: raw cases -> h5 files, split lists and the manifest.

Cases are processed in list order. Each case is written to a temporary file that replaces the final name
only when complete, and the manifest is rewritten (atomically) after every case, so a crash never leaves a
half-written case and the next run resumes: cases whose output exists and whose manifest entry has the same
options and source checksums are skipped. The list files are written last.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from benchmarks.config import parse_value
from benchmarks.config.coerce import from_dict, to_dict
from benchmarks.config.dataset import NAME as DATASET_NAME
from benchmarks.data.layouts import get_layout, write_id_list
from benchmarks.errors import ConfigError, DataError
from benchmarks.io import atomic_path, write_yaml
from benchmarks.prepare import manifest
from benchmarks.prepare.pancreas import PancreasCoranet, PancreasMcnet
from benchmarks.prepare.recipes import LeftAtrium, Lung, Nnunet, Prepared, Recipe, require_listed
from benchmarks.prepare.steps import stats
from benchmarks.train.provenance import code_version, package_versions

#: Bumped when a change of the code changes prepared cases (part of every case's options digest).
RECIPE_VERSION = 1
RECIPES: dict[str, Recipe] = {r.name: r for r in (LeftAtrium(), PancreasMcnet(), PancreasCoranet(), Lung(), Nnunet())}
#: The dataset YAML written for data without a built-in dataset file (``--dataset <out>/dataset.yaml``).
DATASET_FILE = "dataset.yaml"


@dataclass(frozen=True)
class Summary:
    """What one run did: cases written, cases kept from an earlier run, the output root and the dataset YAML
    written (``None`` for a built-in dataset)."""

    written: list[str]
    kept: list[str]
    root: Path
    dataset_file: Path | None = None


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r} to prepare; known: {', '.join(RECIPES)}") from None


def parse_options(recipe: Recipe, values: Sequence[str] | Mapping[str, Any] = ()) -> Any:
    """The recipe's options from ``key=value`` strings (values parsed as YAML) or a mapping."""
    if not isinstance(values, Mapping):
        pairs = {}
        for pair in values:
            key, sep, text = pair.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set expects key=value, got {pair!r}")
            pairs[key.strip()] = parse_value(key, text)
        values = pairs
    return from_dict(recipe.Options, dict(values), where=f"prepare {recipe.name}")


def case_options(options: Any) -> dict[str, Any]:
    """The options that change cases (fields not marked ``split``)."""
    return {f.name: to_dict(getattr(options, f.name)) for f in dataclasses.fields(options)
            if not f.metadata.get("split")}


def write_h5(path: Path, prepared: Prepared) -> None:
    """``image`` float32 and ``label`` uint8 (gzip) plus the ``spacing`` (mm) and extra attributes, atomically."""
    for stale in path.parent.glob(f".{path.name}.*.tmp") if path.parent.is_dir() else ():
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("image", data=prepared.image.astype(np.float32), compression="gzip")
        handle.create_dataset("label", data=prepared.label.astype(np.uint8), compression="gzip")
        handle.attrs["spacing"] = np.asarray(prepared.spacing, dtype=np.float64)
        for key, value in prepared.attrs.items():
            handle.attrs[key] = value


def _check(prepared: Prepared, case_id: str) -> None:
    image, label = prepared.image, prepared.label
    if image.shape != label.shape or image.ndim != 3:
        raise DataError(f"case {case_id}: prepared image {image.shape} and label {label.shape} differ")
    if not np.isfinite(image).all():
        raise DataError(f"case {case_id}: prepared image has non-finite values")
    if not label.any():
        raise DataError(f"case {case_id}: the label lost all foreground in preparation")


def prepare_dataset(dataset: str, raw: str | os.PathLike[str], out: str | os.PathLike[str],
                    options: Sequence[str] | Mapping[str, Any] = (), progress: bool | None = None,
                    name: str | None = None) -> Summary:
    """Prepare every listed case of ``dataset`` from ``raw`` into ``out`` (resuming); see the module docstring.

    A recipe without a built-in dataset file (``nnunet``) also writes ``<out>/dataset.yaml`` for the dataset
    ``name`` (default: the name of ``out`` with other characters than letters, digits and ``_`` replaced by
    ``_``). ``progress=None`` shows a bar only on a terminal.
    """
    recipe = get_recipe(dataset)
    opts = parse_options(recipe, options)
    raw, root = Path(raw), Path(out)
    name = name or re.sub(r"[^A-Za-z0-9_]", "_", root.resolve().name)
    if not DATASET_NAME.match(name):
        raise ConfigError(f"invalid dataset name {name!r}; expected letters, digits and '_'")
    if not raw.is_dir():
        raise DataError(f"{raw}: raw data folder not found")
    found = recipe.discover(raw, opts)
    lists = recipe.lists(found, opts)
    require_listed(recipe, found, lists, raw, opts)
    ids = list(dict.fromkeys(case_id for names in lists.values() for case_id in names))
    layout = get_layout(recipe.layout)
    previous = manifest.load(root) or {}
    if previous and previous.get("recipe") != recipe.name:
        raise DataError(f"{root / manifest.NAME}: prepared by recipe {previous.get('recipe')!r}, not "
                        f"{recipe.name!r}; use another --out")
    changing = case_options(opts)
    options_digest = manifest.digest({"recipe": recipe.name, "version": RECIPE_VERSION, "options": changing})
    old_cases: dict[str, Any] = previous.get("cases", {})
    record: dict[str, Any] = {
        "recipe": recipe.name, "split": recipe.split_name(opts), "layout": layout.name, "raw": str(raw.resolve()),
        "options": to_dict(opts), "options_digest": options_digest, "recipe_version": RECIPE_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "code": code_version(),
        "packages": {**package_versions(), "SimpleITK": sitk.Version.VersionString()},
        "oracle_crop": "every case is cropped around its ground-truth label (literature convention)",
        "complete": False, "lists": lists, "cases": {},
    }
    cases: dict[str, Any] = record["cases"]
    written, kept = [], []
    disable = not sys.stderr.isatty() if progress is None else not progress
    for case_id in tqdm(ids, desc=f"prepare {recipe.name}", unit="case", disable=disable):
        case = found[case_id]
        old = old_cases.get(case_id)
        sources = {"image": manifest.source_record(case.image, (old or {}).get("sources", {}).get("image")),
                   "label": manifest.source_record(case.label, (old or {}).get("sources", {}).get("label"))}
        if manifest.is_current(old, options_digest, sources, root):
            cases[case_id] = {**old, "sources": sources}
            kept.append(case_id)
            continue
        prepared = recipe.process(case, opts)
        _check(prepared, case_id)
        path = layout.case_path(root, case_id)
        write_h5(path, prepared)
        cases[case_id] = {
            "output": path.relative_to(root).as_posix(), "output_bytes": path.stat().st_size,
            "sources": sources, "options_digest": options_digest,
            "shape": list(prepared.image.shape), "spacing": list(prepared.spacing), "crop": prepared.box.as_dict(),
            "intensity": {"source": prepared.info.get("source", {}).get("intensity"),
                          "output": stats(prepared.image)},
            "foreground_voxels": int(prepared.label.sum()),
            **{k: v for k, v in prepared.info.items() if k != "source"},
            "source_geometry": {k: v for k, v in prepared.info.get("source", {}).items() if k != "intensity"},
        }
        written.append(case_id)
        manifest.save(root, record)
    described = recipe.dataset_file(name, raw, opts, lists)
    if described is not None:
        write_yaml(root / DATASET_FILE, described)
    for list_name, names in lists.items():
        write_id_list(root / list_name, names)
    record["complete"] = True
    manifest.save(root, record)
    return Summary(written, kept, root, root / DATASET_FILE if described is not None else None)
