"""The training harness: config resolution, exact resume, logs, checkpoints, non-finite losses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks.config import load_config
from benchmarks.errors import CheckpointError, ConfigError, TrainingDiverged
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import BEST, FINAL, LATEST, Trainer
from methods.vnet import SupervisedVNet


def tiny_config(root: Path, **extra):
    overrides = {
        "dataset": "synthetic", "data_root": str(root), "labels": "4", "iterations": 6, "patch": [32, 32, 16],
        "filters": 4, "checkpoint_every": 2, "validation": 2, "val_every": 3, "val_start": 0.0,
        "eval": {"window": [32, 32, 16], "strides": [16, 16, 8]}, "device": "cpu",
    } | extra
    return load_config(overrides)


def weights(run_dir: Path, name: str = FINAL) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / name)["method_state"]


def test_run_writes_everything(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny_config(tiny_synthetic)
    Trainer(config, options, tmp_path / "run", progress=False).fit()
    run = tmp_path / "run"
    for name in ("config.yaml", "provenance.json", "split.json", "log.csv", "val.csv", LATEST, FINAL, BEST):
        assert (run / name).is_file(), name
    log = pd.read_csv(run / "log.csv")
    assert list(log["iteration"]) == list(range(6))
    assert {"loss", "ce", "dice", "lr_main", "steps_main"} <= set(log.columns)
    assert list(log["steps_main"]) == list(range(1, 7))
    val = pd.read_csv(run / "val.csv")
    assert list(val["iteration"]) == [2, 5]  # after iterations 3 and 6
    assert not list(run.glob(".*.tmp"))


def test_resume_is_exact(tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, options = tiny_config(tiny_synthetic)
    Trainer(config, options, tmp_path / "straight", progress=False).fit()

    original = SupervisedVNet.training_step

    def crash_at_five(self, ctx, batch):
        if ctx.iteration == 5:
            raise KeyboardInterrupt
        return original(self, ctx, batch)

    monkeypatch.setattr(SupervisedVNet, "training_step", crash_at_five)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, options, tmp_path / "resumed", progress=False).fit()
    assert load_checkpoint(tmp_path / "resumed" / LATEST)["iteration"] == 4
    monkeypatch.setattr(SupervisedVNet, "training_step", original)
    Trainer(config, options, tmp_path / "resumed", progress=False).fit()

    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log_a = pd.read_csv(tmp_path / "straight" / "log.csv").drop(columns="seconds")
    log_b = pd.read_csv(tmp_path / "resumed" / "log.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(log_a, log_b)


def test_same_seed_same_weights_other_seed_differs(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny_config(tiny_synthetic, iterations=2, selection="last")
    Trainer(config, options, tmp_path / "a", progress=False).fit()
    Trainer(config, options, tmp_path / "b", progress=False).fit()
    other, _ = tiny_config(tiny_synthetic, iterations=2, selection="last", seed=7)
    Trainer(other, options, tmp_path / "c", progress=False).fit()
    a, b, c = (weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_step_schedule_in_log(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny_config(tiny_synthetic, iterations=5, selection="last", schedule={"step_size": 2})
    Trainer(config, options, tmp_path / "run", progress=False).fit()
    lrs = pd.read_csv(tmp_path / "run" / "log.csv")["lr_main"].tolist()
    assert lrs == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4])


def test_non_finite_loss_stops_and_keeps_checkpoint(tiny_synthetic: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config, options = tiny_config(tiny_synthetic, selection="last")
    original = SupervisedVNet.training_step

    def poison(self, ctx, batch):
        if ctx.iteration == 3:
            batch.image[:] = float("nan")
        return original(self, ctx, batch)

    monkeypatch.setattr(SupervisedVNet, "training_step", poison)
    with pytest.raises(TrainingDiverged, match=r"iteration 3: non-finite loss terms .*loss=nan.*ce=nan") as info:
        Trainer(config, options, tmp_path / "run", progress=False).fit()
    assert "checkpoint_latest.pt" in str(info.value)
    state = load_checkpoint(tmp_path / "run" / LATEST)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["method_state"].values() if v.is_floating_point())


def test_run_dir_with_other_config_is_refused(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny_config(tiny_synthetic, iterations=2, selection="last")
    Trainer(config, options, tmp_path / "run", progress=False).fit()
    other, options = tiny_config(tiny_synthetic, iterations=3, selection="last", optimizer={"lr": 0.1})
    with pytest.raises(ConfigError, match=r"differing keys: iterations, optimizer\.lr"):
        Trainer(other, options, tmp_path / "run", progress=False).fit()


def test_checkpoint_of_another_method_is_refused(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, options = tiny_config(tiny_synthetic, iterations=2, selection="last")
    Trainer(config, options, tmp_path / "run", progress=False).fit()
    with pytest.raises(CheckpointError, match="belongs to method 'vnet', not 'lefed'"):
        load_checkpoint(tmp_path / "run" / FINAL, method="lefed")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "garbage.pt")


def test_invalid_config_values_name_the_key(tiny_synthetic: Path) -> None:
    cases = {
        "iterations": (0, "iterations"), "patch": ([30, 32, 16], "patch"), "labels": ("x", "labels"),
        "amp": ("fp8", "amp"), "nonsense": (1, "nonsense"),
    }
    for key, (value, named) in cases.items():
        with pytest.raises(ConfigError, match=named):
            tiny_config(tiny_synthetic, **{key: value})
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        tiny_config(tiny_synthetic, method="nope")
    with pytest.raises(ConfigError, match="options.unknown_option"):
        tiny_config(tiny_synthetic, options={"unknown_option": 1})
