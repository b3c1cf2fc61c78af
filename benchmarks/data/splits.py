"""Labeled / unlabeled / validation / test partition of a protocol's case lists.

Literature convention (README "Label ratios"): the first N training-list entries are labeled,
the rest unlabeled. Held-out validation (protocols.md §10) takes the LAST ``validation`` entries
of the training list and removes them from the pool, so they are never labeled. A percentage is
taken of the whole training list (LA 10 % of 80 = 8 labels with or without validation).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.data.layouts import check_unique, read_id_list
from benchmarks.errors import ConfigError, DataError

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_COUNT = re.compile(r"^\s*(\d+)\s*$")


@dataclass(frozen=True)
class Split:
    """Disjoint tuples of case IDs, each in training-list (or test-list) order."""

    labeled: tuple[str, ...]
    unlabeled: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def label_count(labels: int | str, n_train: int) -> int:
    """Number of labeled cases for ``labels``: a count (``8``, ``"8"``), a percentage of the
    training list (``"10%"`` -> floor(pct * n_train / 100 + 1e-9): 62 cases give 6 and 12).
    Range checks against the pool are :func:`make_split`'s job."""
    if isinstance(labels, bool):
        raise ConfigError(f"labels must be a count, a percentage like '10%' or 'all', got {labels!r}")
    if isinstance(labels, int):
        return labels
    if isinstance(labels, str):
        if match := _COUNT.match(labels):
            return int(match.group(1))
        if match := _PERCENT.match(labels):
            pct = float(match.group(1))
            if not 0 < pct <= 100:
                raise ConfigError(f"labels percentage must be in (0, 100], got {labels!r}")
            return math.floor(pct * n_train / 100 + 1e-9)
    raise ConfigError(f"labels must be a count, a percentage like '10%' or 'all', got {labels!r}")


def make_split(
    train_ids: Sequence[str],
    test_ids: Sequence[str],
    labels: int | str | None,
    validation: int = 0,
    labeled_file: str | os.PathLike[str] | None = None,
    unlabeled_file: str | os.PathLike[str] | None = None,
) -> Split:
    """Split the training list into labeled / unlabeled / validation; ``test_ids`` pass through.

    ``labeled_file`` (and optionally ``unlabeled_file``) replace the first-N convention: their IDs
    must come from the training pool; without ``unlabeled_file`` the unlabeled cases are the rest
    of the pool. ``labels`` may then be None; if given it must agree with the file's count.
    ``labels="all"`` labels the whole pool (upper bound).
    """
    train, test = list(train_ids), list(test_ids)
    if not train:
        raise DataError("the training list is empty")
    if not test:
        raise DataError("the test list is empty")
    check_unique(train, "training list")
    check_unique(test, "test list")
    in_train = set(train)
    shared = [case_id for case_id in test if case_id in in_train]
    if shared:
        raise DataError(f"case {shared[0]!r} is in both the training and the test list ({len(shared)} shared)")
    if isinstance(validation, bool) or not isinstance(validation, int) or validation < 0:
        raise ConfigError(f"validation must be a non-negative int, got {validation!r}")
    if validation >= len(train):
        raise ConfigError(f"validation={validation} leaves no training cases (training list has {len(train)})")
    pool = train[: len(train) - validation]
    held_out = tuple(train[len(train) - validation :])

    if labels is None:
        n_labels = None
    elif isinstance(labels, str) and labels.strip().lower() == "all":
        n_labels = len(pool)
    else:
        n_labels = label_count(labels, len(train))

    if labeled_file is None:
        if unlabeled_file is not None:
            raise ConfigError("unlabeled_file requires labeled_file")
        if n_labels is None:
            raise ConfigError("labels is required when no labeled_file is given")
        _check_count(n_labels, labels, pool, validation)
        return Split(tuple(pool[:n_labels]), tuple(pool[n_labels:]), held_out, tuple(test))

    labeled = _pool_ids(labeled_file, pool, train)
    if unlabeled_file is None:
        is_labeled = set(labeled)
        unlabeled = [case_id for case_id in pool if case_id not in is_labeled]
    else:
        unlabeled = _pool_ids(unlabeled_file, pool, train)
        both = set(labeled) & set(unlabeled)
        if both:
            raise DataError(f"{unlabeled_file}: case {min(both)!r} is also in the labeled file {labeled_file}")
    if n_labels is not None and n_labels != len(labeled):
        raise ConfigError(f"labels={labels!r} means {n_labels} cases but {labeled_file} lists {len(labeled)}")
    return Split(tuple(labeled), tuple(unlabeled), held_out, tuple(test))


def _check_count(n_labels: int, labels: int | str, pool: list[str], validation: int) -> None:
    if n_labels <= 0:
        raise ConfigError(f"labels={labels!r} gives {n_labels} labeled cases; need at least 1")
    if n_labels > len(pool):
        extra = f" after holding out {validation} validation cases" if validation else ""
        raise ConfigError(f"labels={labels!r} asks for {n_labels} labeled cases but the pool has {len(pool)}{extra}")


def _pool_ids(list_file: str | os.PathLike[str], pool: list[str], train: list[str]) -> list[str]:
    ids = read_id_list(list_file)
    in_pool, in_train = set(pool), set(train)
    for case_id in ids:
        if case_id not in in_pool:
            why = "a held-out validation case" if case_id in in_train else "not in the training list"
            raise DataError(f"{list_file}: case {case_id!r} is {why}")
    return ids
