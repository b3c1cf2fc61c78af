"""The fast mode's pieces compute what the reference path computes, and ``sslbench bench --quick`` runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.cli import main
from benchmarks.config import load_config
from benchmarks.data.batches import HDF5Cases, TrainBatches
from benchmarks.data.cases import write_case
from benchmarks.data.device_batches import DeviceBatches
from benchmarks.data.sampler import TwoStreamSchedule
from benchmarks.evaluate.inference import sliding_window
from benchmarks.runtime import build_method
from benchmarks.train.context import HarnessContext
from benchmarks.train.speed import prepare_networks
from methods.base import Batch

# Volumes larger and smaller than the patch (the official zero padding), odd sizes, X != Y.
SHAPES = [(40, 36, 24), (30, 50, 20), (20, 20, 12), (41, 33, 25)]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, list, list[Path]]:
    g = np.random.default_rng(0)
    labeled = [(g.standard_normal(s).astype(np.float32), (g.random(s) > 0.5).astype(np.uint8)) for s in SHAPES]
    unlabeled = [(g.standard_normal(s).astype(np.float32), None) for s in SHAPES[::-1]]
    folder = tmp_path_factory.mktemp("h5")
    paths = [write_case(folder / f"case{i}.h5", image, label) for i, (image, label) in enumerate(labeled)]
    return labeled, unlabeled, paths


@pytest.mark.parametrize("patch", [(32, 32, 16), (24, 28, 20)])
@pytest.mark.parametrize("rotflip", [True, False])
def test_device_batches_are_bit_identical(volumes, patch, rotflip) -> None:
    labeled, unlabeled, _ = volumes
    schedule = TwoStreamSchedule(4, 4, 2, 2, seed=5)
    reference = TrainBatches(labeled, unlabeled, schedule, patch, rotflip=rotflip, seed=5, stop=24)
    device = DeviceBatches(labeled, unlabeled, schedule, patch, rotflip=rotflip, seed=5, stop=24, device="cpu")
    for i in range(24):
        a, b = reference[i], device[i]
        assert a["iteration"] == b["iteration"]
        assert torch.equal(a["labeled_index"], b["labeled_index"])
        assert torch.equal(a["unlabeled_index"], b["unlabeled_index"])
        assert a["image"].shape == b["image"].shape and torch.equal(a["image"], b["image"]), i
        assert b["label"].dtype == torch.int64 and torch.equal(a["label"], b["label"]), i


def test_device_batches_channels_last_and_resume(volumes) -> None:
    labeled, unlabeled, _ = volumes
    schedule = TwoStreamSchedule(4, 4, 2, 2, seed=1)
    whole = DeviceBatches(labeled, unlabeled, schedule, (32, 32, 16), rotflip=True, seed=1, stop=6, device="cpu",
                          channels_last=True)
    resumed = DeviceBatches(labeled, unlabeled, schedule, (32, 32, 16), rotflip=True, seed=1, start=4, stop=6,
                            device="cpu")
    item = whole[5]
    assert item["image"].is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(item["image"], resumed[1]["image"]) and len(list(resumed)) == 2


def test_hdf5_batches_match_memory(volumes) -> None:
    labeled, _, paths = volumes
    schedule = TwoStreamSchedule(4, 4, 2, 2, seed=3)
    memory = TrainBatches(labeled, [(image, None) for image, _ in labeled], schedule, (32, 32, 16), rotflip=True,
                          seed=3, stop=6)
    hdf5 = TrainBatches(HDF5Cases(paths, labeled=True), HDF5Cases(paths, labeled=False), schedule, (32, 32, 16),
                        rotflip=True, seed=3, stop=6)
    assert HDF5Cases(paths, labeled=False)[0][1] is None
    for i in range(6):
        assert torch.equal(memory[i]["image"], hdf5[i]["image"]) and torch.equal(memory[i]["label"], hdf5[i]["label"])


def test_batched_sliding_window_equals_one_at_a_time() -> None:
    config, options = load_config({"method": "vnet", "filters": 4})
    torch.manual_seed(0)
    method = build_method(config, options).eval()
    volume = np.random.default_rng(1).standard_normal((40, 36, 20)).astype(np.float32)
    one = sliding_window(method.predict, volume, (32, 32, 16), (8, 8, 4), batch_size=1)
    batched = sliding_window(method.predict, volume, (32, 32, 16), (8, 8, 4), batch_size=5)
    assert one.shape == (2, 40, 36, 20)
    np.testing.assert_allclose(batched, one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(one.sum(0), 1, atol=1e-5)


@pytest.mark.parametrize("method_name", ["vnet", "lefed"])
def test_channels_last_bf16_training_step_on_cpu(method_name: str) -> None:
    config, options = load_config({"method": method_name, "filters": 4, "amp": "bf16",
                                   "speed": {"channels_last": True}})
    torch.manual_seed(0)
    method = build_method(config, options)
    prepare_networks(method, config.speed)
    conv = next(m for m in method.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    before = conv.weight.detach().clone()
    opt = torch.optim.SGD(method.parameters(), lr=0.01)
    ctx = HarnessContext({"main": opt}, torch.device("cpu"), "bf16")
    ctx.max_iterations = 10
    image = torch.randn(4, 1, 32, 32, 16).contiguous(memory_format=torch.channels_last_3d)
    label = (torch.rand(2, 32, 32, 16) > 0.5).long()
    terms = ctx.run_step(method, Batch(image, label))
    assert terms and all(math.isfinite(v) for v in terms.values()) and ctx.steps["main"] >= 1
    assert not torch.equal(before, conv.weight)


def test_bench_quick_end_to_end(tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--data-root", str(tiny_synthetic), "--set", "labels=4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for figure in ("train_it_per_s", "data_wait_s_per_it", "data_wait_fraction", "harness_overhead", "passes_per_it",
                   "tflop_per_it", "achieved_tflop_s", "eval_s_per_volume", "dice_mean", "dice_std", "learns_same"):
        assert f"| {figure} " in printed, figure
    assert "fast / reference" in printed and "device: CPU" in printed
    frame = pd.read_csv(out / "bench.csv")
    assert set(frame["mode"]) == {"reference", "fast"} and set(frame["method"]) == {"vnet"}
    values = frame.set_index(["figure", "mode"])["value"]
    assert values["achieved_tflop_s", "fast"] == pytest.approx(values["tflop_per_it", "fast"] * values["train_it_per_s", "fast"])
    assert 0 <= values["data_wait_fraction", "fast"] < 1
    assert values["passes_per_it", "fast"] == values["passes_per_it", "reference"] > 1
