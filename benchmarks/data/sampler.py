"""Two-stream (labeled + unlabeled) batch schedule of protocols.md §7, stateless and resumable.

The official ``TwoStreamBatchSampler`` is an iterator; here the indices of iteration t are a
pure function of (seed, stream, epoch = t // epoch_length), so any iteration can be computed
directly (after a resume, or in a DataLoader worker) and matches an uninterrupted run.
"""

from __future__ import annotations

import numpy as np

from benchmarks.data.seeding import rng
from benchmarks.errors import ConfigError


class TwoStreamSchedule:
    """Per epoch: a fresh permutation of the labeled indices cut into groups of ``labeled_bs``
    (an incomplete last group is dropped), zipped with groups of ``unlabeled_bs`` cut from a
    concatenation of fresh permutations of the unlabeled indices, restarted every epoch.

    ``unlabeled_bs=0`` (and ``n_unlabeled=0``) gives supervised-only batches.
    """

    def __init__(
        self,
        n_labeled: int,
        n_unlabeled: int,
        labeled_bs: int = 2,
        unlabeled_bs: int = 2,
        seed: int = 1337,
        stream: str = "train",
    ):
        for name, value in (("n_labeled", n_labeled), ("n_unlabeled", n_unlabeled), ("unlabeled_bs", unlabeled_bs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative int, got {value!r}")
        if isinstance(labeled_bs, bool) or not isinstance(labeled_bs, int) or labeled_bs < 1:
            raise ConfigError(f"labeled_bs must be a positive int, got {labeled_bs!r}")
        if n_labeled < labeled_bs:
            raise ConfigError(f"n_labeled={n_labeled} < labeled_bs={labeled_bs}: an epoch would have 0 iterations")
        if unlabeled_bs > 0 and n_unlabeled == 0:
            raise ConfigError(f"unlabeled_bs={unlabeled_bs} but there are no unlabeled cases")
        self.n_labeled = n_labeled
        self.n_unlabeled = n_unlabeled
        self.labeled_bs = labeled_bs
        self.unlabeled_bs = unlabeled_bs
        self.seed = seed
        self.stream = stream
        self.epoch_length = n_labeled // labeled_bs
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def batch_size(self) -> int:
        return self.labeled_bs + self.unlabeled_bs

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Index arrays of one epoch: labeled (epoch_length, labeled_bs), unlabeled
        (epoch_length, unlabeled_bs); cached for the most recent epoch."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1], self._cached[2]
        n_batches = self.epoch_length
        lab_rng = rng(self.seed, "sampler", self.stream, epoch, "labeled")
        labeled = lab_rng.permutation(self.n_labeled)[: n_batches * self.labeled_bs]
        need = n_batches * self.unlabeled_bs
        if need:
            unl_rng = rng(self.seed, "sampler", self.stream, epoch, "unlabeled")
            rounds = -(-need // self.n_unlabeled)
            unlabeled = np.concatenate([unl_rng.permutation(self.n_unlabeled) for _ in range(rounds)])[:need]
        else:
            unlabeled = np.empty(0, dtype=np.int64)
        plan = labeled.reshape(n_batches, self.labeled_bs), unlabeled.reshape(n_batches, self.unlabeled_bs)
        for array in plan:
            array.setflags(write=False)
        self._cached = (epoch, *plan)
        return plan

    def indices(self, iteration: int) -> tuple[list[int], list[int]]:
        """(labeled indices, unlabeled indices) of the batch of 0-based ``iteration``."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        epoch, position = divmod(iteration, self.epoch_length)
        labeled, unlabeled = self.epoch_plan(epoch)
        return labeled[position].tolist(), unlabeled[position].tolist()
