import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from benchmarks.data.batches import TrainBatches
from benchmarks.data.sampler import TwoStreamSchedule
from benchmarks.errors import ConfigError

PATCH = (8, 8, 6)


def volumes(n, sign, shape=(14, 12, 9)):
    """Case i: image = sign * (100 * (i + 1) + label), so rows and alignment can be checked."""
    g = np.random.default_rng(n)
    out = []
    for i in range(n):
        label = (g.random(shape) < 0.3).astype(np.uint8)
        out.append(((sign * (100.0 * (i + 1) + label)).astype(np.float32), label))
    return out


def make(start=0, stop=12, rotflip=True, unlabeled_bs=2, seed=7):
    labeled, unlabeled = volumes(4, 1), volumes(6, -1)
    schedule = TwoStreamSchedule(4, 6 if unlabeled_bs else 0, 2, unlabeled_bs, seed=seed, stream="main")
    return TrainBatches(
        labeled,
        unlabeled if unlabeled_bs else [],
        schedule,
        PATCH,
        rotflip=rotflip,
        seed=seed,
        stream="main",
        start=start,
        stop=stop,
    )


def test_batch_layout():
    batches = make()
    assert len(batches) == 12
    for i in range(len(batches)):
        item = batches[i]
        assert item["iteration"] == i
        assert item["image"].shape == (4, 1, *PATCH) and item["image"].dtype == torch.float32
        assert item["label"].shape == (2, *PATCH) and item["label"].dtype == torch.int64
        image = item["image"][:, 0].numpy()
        lab_idx, unl_idx = batches.schedule.indices(i)
        assert item["labeled_index"].tolist() == lab_idx and item["unlabeled_index"].tolist() == unl_idx
        for row, case in enumerate(lab_idx):  # labeled rows first, label aligned with image
            inside = image[row] != 0  # 0 only in padding
            assert np.array_equal(image[row][inside] - 100 * (case + 1), item["label"][row].numpy()[inside])
        for row, case in enumerate(unl_idx, start=2):
            assert np.all(np.isin(image[row], [0.0, -100.0 * (case + 1), -100.0 * (case + 1) - 1]))


def test_start_offset_and_determinism():
    full, resumed = make(0, 12), make(5, 12)
    assert len(resumed) == 7
    for i in range(7):
        a, b = full[5 + i], resumed[i]
        assert a["iteration"] == b["iteration"] == 5 + i
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(make(seed=8)[0]["image"], full[0]["image"])
    assert not torch.equal(make(rotflip=False)[3]["image"], full[3]["image"])


def test_supervised_only():
    item = make(unlabeled_bs=0)[2]
    assert item["image"].shape == (2, 1, *PATCH) and item["unlabeled_index"].numel() == 0


def test_workers_match_single_process():
    batches = make(0, 8)
    single = list(DataLoader(batches, batch_size=None, num_workers=0))
    multi = list(DataLoader(batches, batch_size=None, num_workers=2))
    assert [b["iteration"] for b in multi] == list(range(8))
    for a, b in zip(single, multi):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_errors():
    with pytest.raises(IndexError):
        make(0, 3)[3]
    schedule = TwoStreamSchedule(4, 6, seed=0)
    with pytest.raises(ConfigError, match="schedule expects 4 labeled / 6 unlabeled cases, got 3 / 6"):
        TrainBatches(volumes(3, 1), volumes(6, -1), schedule, PATCH, rotflip=True, seed=0, stop=1)
    with pytest.raises(ConfigError, match="every labeled sample needs a label"):
        TrainBatches(
            [(v, None) for v, _ in volumes(4, 1)], volumes(6, -1), schedule, PATCH, rotflip=True, seed=0, stop=1
        )
    with pytest.raises(ConfigError, match="need 0 <= start <= stop"):
        TrainBatches(volumes(4, 1), volumes(6, -1), schedule, PATCH, rotflip=True, seed=0, start=3, stop=1)
