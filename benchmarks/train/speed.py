"""The harness's speed settings (``RunConfig.speed``): batch sources, memory format, compilation, data-wait clock.

None of them changes what a run computes beyond floating-point reordering: the three batch sources give
bit-identical batches (``tests/speed``), channels-last and compiled networks compute the same functions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config.schema import SpeedConfig
from ..data.batches import HDF5Cases, TrainBatches
from ..data.cases import Case
from ..data.device_batches import DeviceBatches
from ..data.sampler import TwoStreamSchedule

T = TypeVar("T")


def prepare_networks(method: nn.Module, speed: SpeedConfig) -> None:
    """Apply ``speed.channels_last`` (every 5-D parameter and buffer in ``channels_last_3d``) and
    ``speed.compile`` (each direct child network compiled in place: ``state_dict`` keys are unchanged, so
    checkpoints stay interchangeable with eager runs) to ``method``, already on its device."""
    if speed.channels_last:
        method.to(memory_format=torch.channels_last_3d)
    if speed.compile != "off":
        for child in method.children():
            if any(True for _ in child.parameters()):
                child.compile(mode=speed.compile)


def training_batches(
    speed: SpeedConfig,
    labeled: Sequence[Case],
    unlabeled: Sequence[Case],
    schedule: TwoStreamSchedule,
    patch: Sequence[int],
    *,
    rotflip: bool,
    seed: int,
    stream: str,
    start: int,
    stop: int,
    device: torch.device,
    num_workers: int,
) -> Iterable[dict[str, Any]]:
    """The batches of iterations ``start .. stop - 1`` from the source ``speed.data`` names.

    ``memory``/``hdf5``: a :class:`DataLoader` over :class:`TrainBatches` (in-memory arrays, or
    :class:`HDF5Cases` re-reading each sample's file) with ``num_workers`` processes, pinned memory on CUDA;
    ``device``: :class:`DeviceBatches` on ``device`` in this process.
    """
    common = {"rotflip": rotflip, "seed": seed, "stream": stream, "start": start, "stop": stop}
    if speed.data == "device":
        return DeviceBatches([(c.image, c.label) for c in labeled], [(c.image, None) for c in unlabeled], schedule,
                             patch, device=device, channels_last=speed.channels_last, **common)  # type: ignore[arg-type]
    if speed.data == "hdf5":
        batches = TrainBatches(HDF5Cases([c.path for c in labeled], labeled=True),
                               HDF5Cases([c.path for c in unlabeled], labeled=False), schedule, patch,
                               **common)  # type: ignore[arg-type]
    else:
        batches = TrainBatches([(c.image, c.label) for c in labeled], [(c.image, None) for c in unlabeled],
                               schedule, patch, **common)  # type: ignore[arg-type]
    return DataLoader(batches, batch_size=None, num_workers=num_workers, pin_memory=device.type == "cuda",
                      persistent_workers=False)


class WaitClock:
    """Host seconds the training loop spends blocked on its batch source, one entry per batch.

    On a GPU with ``data: device`` this is the time to queue the augmentation kernels, not to run them.
    """

    def __init__(self) -> None:
        self.waits: list[float] = []

    def wrap(self, source: Iterable[T]) -> Iterator[T]:
        iterator = iter(source)
        while True:
            tic = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - tic)
            yield item
