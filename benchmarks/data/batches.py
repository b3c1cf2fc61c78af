"""Map-style dataset of whole training batches, one item per iteration.

Use with ``DataLoader(batches, batch_size=None, num_workers=k)``: item ``i`` is the batch of
iteration ``start + i``, computed from (seed, stream, iteration) alone, so any number of
workers, and a run resumed at ``start``, produce the same batches as one uninterrupted process.

Samples come from in-memory arrays or from :class:`HDF5Cases`, which re-reads a case's file on every
access as the official code's ``Dataset.__getitem__`` does (the benchmark's reference mode).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from benchmarks.data.sampler import TwoStreamSchedule
from benchmarks.data.seeding import rng
from benchmarks.data.transforms import as_patch, random_crop, rot_flip_views
from benchmarks.errors import ConfigError

Sample = tuple[np.ndarray, np.ndarray | None]


class HDF5Cases(Sequence[Sample]):
    """Cases read from their HDF5 file (datasets ``image``, ``label``) on every access, never cached.

    Item ``i``: (image float32 (X, Y, Z), label uint8 (X, Y, Z) if ``labeled`` else None). The files are
    the ones :func:`~benchmarks.data.cases.load_case` validated, so no check is repeated.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], labeled: bool) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.labeled = labeled

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        with h5py.File(self.paths[index], "r") as handle:
            image = handle["image"][()].astype(np.float32, copy=False)
            label = handle["label"][()].astype(np.uint8, copy=False) if self.labeled else None
        return image, label


def check_sources(labeled: Sequence[Sample], unlabeled: Sequence[Sample], schedule: TwoStreamSchedule,
                  start: int, stop: int) -> None:
    """ConfigError unless the samples match ``schedule``'s case counts, every labeled sample has a label and
    ``0 <= start <= stop``."""
    if len(labeled) != schedule.n_labeled or len(unlabeled) != schedule.n_unlabeled:
        raise ConfigError(
            f"schedule expects {schedule.n_labeled} labeled / {schedule.n_unlabeled} unlabeled cases, "
            f"got {len(labeled)} / {len(unlabeled)}"
        )
    if not labeled.labeled if isinstance(labeled, HDF5Cases) else any(label is None for _, label in labeled):
        raise ConfigError("every labeled sample needs a label")
    if not 0 <= start <= stop:
        raise ConfigError(f"need 0 <= start <= stop, got start={start}, stop={stop}")


class TrainBatches(Dataset):
    """Batches of iterations ``start .. stop - 1`` drawn by ``schedule`` from in-memory volumes.

    ``labeled``: (image, label) pairs, float32/uint8 (X, Y, Z), index i = labeled case i of the
    schedule; ``unlabeled``: (image, label-or-None) pairs, the label is ignored. Each sample
    goes through [random_rot_flip if ``rotflip``] then random_crop(``patch``) with the generator
    ``rng(seed, "augment", stream, iteration, slot)``, slot = row in the batch. The volumes are
    only referenced (never copied); each item allocates just its patches. Either sequence may be
    :class:`HDF5Cases` (read per sample).

    Item: ``image`` float32 (B, 1, *patch) with the labeled rows first, ``label`` int64
    (labeled_bs, *patch), ``iteration`` int, ``labeled_index``/``unlabeled_index`` int64
    tensors of the case indices used.
    """

    def __init__(
        self,
        labeled: Sequence[Sample],
        unlabeled: Sequence[Sample],
        schedule: TwoStreamSchedule,
        patch: Sequence[int],
        *,
        rotflip: bool,
        seed: int,
        stream: str = "train",
        start: int = 0,
        stop: int,
    ):
        check_sources(labeled, unlabeled, schedule, start, stop)
        self.labeled = labeled if isinstance(labeled, HDF5Cases) else list(labeled)
        self.unlabeled = unlabeled if isinstance(unlabeled, HDF5Cases) else list(unlabeled)
        self.schedule = schedule
        self.patch = as_patch(patch)
        self.rotflip = rotflip
        self.seed = seed
        self.stream = stream
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    def _sample(self, image: np.ndarray, label: np.ndarray | None, iteration: int, slot: int) -> Sample:
        generator = rng(self.seed, "augment", self.stream, iteration, slot)
        if self.rotflip:
            image, label = rot_flip_views(image, label, generator)
        return random_crop(image, label, self.patch, generator)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        iteration = self.start + index
        lab_idx, unl_idx = self.schedule.indices(iteration)
        images, labels = [], []
        for slot, case in enumerate(lab_idx):
            image, label = self._sample(*self.labeled[case], iteration, slot)
            images.append(image)
            labels.append(label)
        for slot, case in enumerate(unl_idx, start=len(lab_idx)):
            image, _ = self._sample(self.unlabeled[case][0], None, iteration, slot)
            images.append(image)
        return {
            "image": torch.from_numpy(np.stack(images)[:, None].astype(np.float32, copy=False)),
            "label": torch.from_numpy(np.stack(labels).astype(np.int64)),
            "iteration": iteration,
            "labeled_index": torch.tensor(lab_idx, dtype=torch.int64),
            "unlabeled_index": torch.tensor(unl_idx, dtype=torch.int64),
        }
