"""Training batches cut on the training device: the volumes stay there, crop/rot90/flip are torch gathers.

:class:`DeviceBatches` yields exactly the batches of :class:`~benchmarks.data.batches.TrainBatches`
(same schedule, same keyed random draws, bit-identical patches), but no volume crosses the host-device
boundary after the first copy and no loader process is needed. The random draws (four small integers per
sample) stay on the host in NumPy; only the gathers run on the device, asynchronously on a GPU.

A rotated and flipped view ``V' = flip(rot90(V, k, axes=(0, 1)), axis)`` maps every axis of ``V'`` to one
axis of ``V``, read forwards or backwards, so the crop of ``V'`` is three ``index_select`` calls on ``V``
(plus a transpose of X and Y for odd ``k``); the official zero padding of small volumes is a mask.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from benchmarks.data.batches import Sample, check_sources
from benchmarks.data.sampler import TwoStreamSchedule
from benchmarks.data.seeding import rng
from benchmarks.data.transforms import Patch, as_patch, crop_padding


def plan_sample(shape: Sequence[int], patch: Patch, rotflip: bool, generator: np.random.Generator) -> tuple[
        list[np.ndarray], list[np.ndarray], bool]:
    """Index vectors of one augmented patch of a volume of ``shape`` (X, Y, Z).

    Draws from ``generator`` exactly what :func:`~benchmarks.data.transforms.rot_flip_views` followed by
    :func:`~benchmarks.data.transforms.random_crop` draw (k, flip axis, then one offset per axis).

    Returns ``(indices, valid, transpose)``: per axis of ``V`` the int64 positions read (clamped into the
    volume); per axis of the patch a bool mask of the positions inside the volume (False = zero padding);
    ``transpose``: the gathered block is (Y, X, Z)-ordered and must be transposed to the patch's order.
    """
    k, axis = (int(generator.integers(0, 4)), int(generator.integers(0, 2))) if rotflip else (0, -1)
    # Where each axis of V lands in V' and in which direction: transform broadcastable index grids.
    grids = [np.arange(shape[0]).reshape(-1, 1, 1), np.arange(shape[1]).reshape(1, -1, 1)]
    views = [np.rot90(g, k, axes=(0, 1)) for g in grids]
    if axis >= 0:
        views = [np.flip(v, axis=axis) for v in views]
    lands = [0, 1] if k % 2 == 0 else [1, 0]  # the axis of V' that X and Y of V become
    rotated = (shape[0], shape[1], shape[2]) if lands[0] == 0 else (shape[1], shape[0], shape[2])
    pad = crop_padding(rotated, patch)
    start = [int(generator.integers(0, max(s + 2 * q - p, 1))) for s, q, p in zip(rotated, pad, patch)]
    crop = [o - q + np.arange(p) for o, q, p in zip(start, pad, patch)]  # positions along V' axes
    valid = [(c >= 0) & (c < s) for c, s in zip(crop, rotated)]
    clamped = [np.clip(c, 0, s - 1) for c, s in zip(crop, rotated)]
    indices = [views[0].reshape(-1)[clamped[lands[0]]], views[1].reshape(-1)[clamped[lands[1]]], clamped[2]]
    return [i.astype(np.int64) for i in indices], valid, lands[0] == 1


def gather_patch(volume: Tensor, indices: Sequence[Tensor], valid: Tensor | None, transpose: bool) -> Tensor:
    """The patch of ``volume`` (X, Y, Z) planned by :func:`plan_sample`; ``valid`` the (X', Y', Z) bool
    mask of real voxels in patch order, or None when there is no padding."""
    block = volume.index_select(0, indices[0]).index_select(1, indices[1]).index_select(2, indices[2])
    if transpose:
        block = block.transpose(0, 1)
    if valid is not None:
        block = torch.where(valid, block, torch.zeros((), dtype=block.dtype, device=block.device))
    return block.contiguous()


class DeviceBatches:
    """The batches of iterations ``start .. stop - 1``, as :class:`~benchmarks.data.batches.TrainBatches`
    makes them, with every volume copied once to ``device`` (image float32, label uint8).

    Item: ``image`` float32 (B, 1, *patch) on ``device`` (``channels_last_3d`` if ``channels_last``),
    ``label`` int64 (labeled_bs, *patch) on ``device``, ``iteration`` int, ``labeled_index`` /
    ``unlabeled_index`` int64 CPU tensors.
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
        device: torch.device | str,
        stream: str = "train",
        start: int = 0,
        stop: int,
        channels_last: bool = False,
    ) -> None:
        check_sources(labeled, unlabeled, schedule, start, stop)
        self.device = torch.device(device)
        self.labeled = [(self._put(i, torch.float32), self._put(lab, torch.uint8)) for i, lab in labeled]
        self.unlabeled = [self._put(i, torch.float32) for i, _ in unlabeled]
        self.schedule = schedule
        self.patch = as_patch(patch)
        self.rotflip = rotflip
        self.seed = seed
        self.stream = stream
        self.start = start
        self.stop = stop
        self.channels_last = channels_last

    def _put(self, array: np.ndarray, dtype: torch.dtype) -> Tensor:
        """``array`` on the device; on the CPU it may share the (read-only) array, which is only ever read."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(np.asarray(array)).to(self.device, dtype)

    def __len__(self) -> int:
        return self.stop - self.start

    def _sample(self, volumes: Sequence[Tensor], iteration: int, slot: int) -> list[Tensor]:
        generator = rng(self.seed, "augment", self.stream, iteration, slot)
        indices, valid, transpose = plan_sample(tuple(volumes[0].shape), self.patch, self.rotflip, generator)
        index = [torch.from_numpy(i).to(self.device, non_blocking=True) for i in indices]
        mask = None
        if not all(v.all() for v in valid):
            mask = torch.from_numpy(valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :])
            mask = mask.to(self.device, non_blocking=True)
        return [gather_patch(v, index, mask, transpose) for v in volumes]

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        iteration = self.start + index
        lab_idx, unl_idx = self.schedule.indices(iteration)
        images, labels = [], []
        for slot, case in enumerate(lab_idx):
            image, label = self._sample(self.labeled[case], iteration, slot)
            images.append(image)
            labels.append(label)
        for slot, case in enumerate(unl_idx, start=len(lab_idx)):
            images.extend(self._sample([self.unlabeled[case]], iteration, slot))
        batch = torch.stack(images)[:, None]
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        return {
            "image": batch,
            "label": torch.stack(labels).long(),
            "iteration": iteration,
            "labeled_index": torch.tensor(lab_idx, dtype=torch.int64),
            "unlabeled_index": torch.tensor(unl_idx, dtype=torch.int64),
        }

    def __iter__(self) -> Iterator[dict[str, Tensor | int]]:
        return (self[i] for i in range(len(self)))
