"""Stable, keyed random generators: every draw is a function of (seed, keys) only.

``rng(1337, "augment", "train", 412, 3)`` always returns a generator in the same state, in
every process and Python session, so a run resumed at iteration 412 (or a DataLoader worker
that computes batch 412) draws exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

Key = int | str


def _entropy(seed: int, keys: tuple[Key, ...]) -> list[int]:
    """128 bits of entropy from a canonical JSON encoding of (seed, *keys) (type-tagged, stable)."""
    for value in (seed, *keys):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"seed and keys must be int or str, got {value!r} ({type(value).__name__})")
    payload = json.dumps([seed, *keys], ensure_ascii=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(payload).digest()[:16]
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def rng(seed: int, *keys: Key) -> np.random.Generator:
    """A PCG64 generator determined by ``seed`` and the ordered ``keys`` (ints or strings).

    Different key tuples give independent streams (``(1, 2)`` differs from ``("1", 2)`` and from
    ``(12,)``); Python's salted ``hash`` is never used.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(_entropy(seed, keys))))
