"""From a run configuration to its split and in-memory cases."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..config.dataset import load_dataset
from ..data.cases import Case, CaseStore
from ..data.layouts import Layout, get_layout
from ..data.splits import Split, make_split
from ..data.synthetic import generate_synthetic


def data_root(config: RunConfig) -> Path:
    """The dataset root; the embedded synthetic dataset is generated on first use."""
    root = Path(config.data_root).expanduser()
    if config.dataset == "synthetic" and not (root / "train.list").is_file():
        generate_synthetic(root)
    return root


def run_layout(config: RunConfig) -> Layout:
    """``config.layout``: the one its dataset's YAML declares under that name, else a built-in layout."""
    declared = load_dataset(config.dataset).layout
    return declared if declared.name == config.layout else get_layout(config.layout)


def load_split(config: RunConfig) -> Split:
    layout = run_layout(config)
    train, test = layout.read_lists(data_root(config))
    validation = config.validation if config.selection == "heldout" else 0
    return make_split(train, test, config.labels, validation, config.labeled_file, config.unlabeled_file)


@dataclass
class TrainingCases:
    labeled: list[Case]
    unlabeled: list[Case]
    validation: list[Case]
    #: Labeled or validation cases whose label map has no foreground voxel (allowed, reported).
    empty_labels: list[str] = field(default_factory=list)
    #: dtype casts made on loading the run's cases, test cases included: ``{"image float64 -> float32": [IDs]}``.
    casts: dict[str, list[str]] = field(default_factory=dict)


def load_training_cases(config: RunConfig, split: Split, need_unlabeled: bool, progress: bool) -> TrainingCases:
    """Read every case the run trains or validates on, once; empty label maps are allowed and listed.

    The test cases are read and validated too (and not kept), so that a broken one stops the run before training.
    """
    layout, root = run_layout(config), data_root(config)
    ids = [*split.labeled, *(split.unlabeled if need_unlabeled else ()), *split.validation]
    store = CaseStore.load(layout, root, ids, require_foreground=False, source=f"training list of {root}",
                           progress=progress)
    casts = cast_summary([*store.values(), *load_test_cases(config, split, progress)])
    return TrainingCases(
        labeled=[store[i] for i in split.labeled],
        unlabeled=[store[i] for i in split.unlabeled] if need_unlabeled else [],
        validation=[store[i] for i in split.validation],
        empty_labels=[i for i in (*split.labeled, *split.validation) if not store[i].label.any()],
        casts=casts,
    )


def load_test_cases(config: RunConfig, split: Split, progress: bool) -> list[Case]:
    layout, root = run_layout(config), data_root(config)
    store = CaseStore.load(layout, root, split.test, source=f"test list of {root}", progress=progress)
    return [store[i] for i in split.test]


def cast_summary(cases: Iterable[Case]) -> dict[str, list[str]]:
    """The case IDs of each dtype cast made on loading ``cases``, in order."""
    out: dict[str, list[str]] = {}
    for case in cases:
        for cast in case.casts:
            out.setdefault(cast, []).append(case.id)
    return out
