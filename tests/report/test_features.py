"""Weight snapshots during training and Fig. 6's decoder feature maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.config import config_hash, load_config
from benchmarks.data.cases import load_case
from benchmarks.errors import ConfigError, DataError
from benchmarks.report.features import centre_window, snapshot_features
from benchmarks.runtime import restore_method
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import FINAL, Trainer


def tiny(root: Path, method: str = "lefed", **extra):
    overrides = {
        "method": method, "dataset": "synthetic", "data_root": str(root), "labels": "4", "iterations": 4,
        "patch": [32, 32, 16], "filters": 4, "selection": "last", "checkpoint_every": 4, "device": "cpu",
        "eval": {"window": [32, 32, 16], "strides": [16, 16, 8]},
    } | extra
    return load_config(overrides)


def test_centre_window_crops_and_pads() -> None:
    volume = np.arange(5 * 8 * 3, dtype=np.float32).reshape(5, 8, 3)
    out = centre_window(volume, (4, 4, 6))
    assert out.shape == (4, 4, 6)
    np.testing.assert_array_equal(out[:, :, 1:4], volume[0:4, 2:6, :])  # x: crop from 0, y: from 2, z: pad 1 + 2
    assert not out[:, :, 0].any() and not out[:, :, 4:].any()


def test_snapshots_leave_training_unchanged_and_give_feature_maps(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny(tiny_synthetic, snapshots=[2, 4])
    plain, _ = tiny(tiny_synthetic)
    assert config_hash(config) == config_hash(plain)
    Trainer(config, options, tmp_path / "snap", progress=False).fit()
    Trainer(plain, options, tmp_path / "plain", progress=False).fit()
    final = load_checkpoint(tmp_path / "plain" / FINAL)["method_state"]
    snapshots = sorted((tmp_path / "snap" / "snapshots").iterdir())
    assert [p.name for p in snapshots] == ["train_000002.pt", "train_000004.pt"]
    last = load_checkpoint(snapshots[-1], "lefed")
    assert last["iteration"] == 4 and "optimizers" not in last
    assert all(torch.equal(last["method_state"][k], final[k]) for k in final)
    assert not all(torch.equal(load_checkpoint(snapshots[0])["method_state"][k], final[k]) for k in final)

    data = np.load(snapshot_features(tmp_path / "snap", tmp_path / "f.npz"))
    assert list(data["names"]) == ["A (Dice)", "B (CE)"]
    assert data["maps"].shape == (2, 2, 32, 32) and list(data["iterations"]) == [2, 4]
    first = (tiny_synthetic / "test.list").read_text().split()[0]
    assert str(data["case"]) == first
    method = restore_method(config, options, snapshots[-1], torch.device("cpu"))
    case = load_case(tiny_synthetic / "cases" / f"{first}.h5", first, (1.0, 1.0, 1.0))
    x = torch.from_numpy(centre_window(case.image, (32, 32, 16)))[None, None]
    with torch.no_grad():
        a = method.net(x)[0].features[0].mean(0)[:, :, 8].numpy()
    np.testing.assert_allclose(data["maps"][0, 1], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(data["image"], centre_window(case.image, (32, 32, 16))[:, :, 8])
    assert not np.allclose(data["maps"][0, 1], data["maps"][1, 1])  # A and B differ


def test_features_need_snapshots_and_feature_maps(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny(tiny_synthetic, iterations=1)
    Trainer(config, options, tmp_path / "none", progress=False).fit()
    with pytest.raises(DataError, match="no weight snapshots"):
        snapshot_features(tmp_path / "none", tmp_path / "f.npz")
    config, options = tiny(tiny_synthetic, method="vnet", iterations=1, snapshots=[1])
    Trainer(config, options, tmp_path / "vnet", progress=False).fit()
    with pytest.raises(ConfigError, match="exposes no feature maps"):
        snapshot_features(tmp_path / "vnet", tmp_path / "f.npz")
    with pytest.raises(ConfigError, match="snapshots"):
        tiny(tiny_synthetic, snapshots=[0])
