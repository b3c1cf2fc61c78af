"""Multi-stage training: per-stage budgets and lr, hand-over of the selected checkpoint, exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import Tensor, nn

import methods
from benchmarks.config import load_config
from benchmarks.errors import ConfigError
from benchmarks.evaluate.run import evaluate_run
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import BEST, FINAL, LATEST, Trainer
from methods.base import Batch, Method, Options, RunInfo, Stage, StepContext
from methods.ema import make_teacher, update_ema
from methods.losses import cross_entropy, softmax_mse
from methods.nets.vnet import VNet


class TwoStage(Method):
    """Supervised pre-training, then a mean teacher initialised from the student (with a random nudge and
    a statistic of the unlabeled volumes, to exercise the RNG and the data view at the boundary)."""

    name = "two_stage_fake"
    paper = "test double"

    def __init__(self, options: Options, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = VNet(in_channels, num_classes, filters, dropout=True)
        self.teacher = make_teacher(self.net)
        self.register_buffer("unlabeled_mean", torch.zeros(()))
        self.started: dict[str, dict[str, Tensor]] = {}

    def stages(self, run: RunInfo) -> tuple[Stage, ...]:
        return (Stage("pre", iterations=3, unlabeled_bs=0, constant_lr=True, select_best=True),
                Stage("main", reset_optimizers=True))

    def segmenter(self) -> nn.Module:
        return self.net

    def on_stage_start(self, ctx: StepContext) -> None:
        self.started[ctx.stage] = {k: v.clone() for k, v in self.net.state_dict().items()}
        if ctx.stage == "main":
            self.teacher.load_state_dict(self.net.state_dict())
            with torch.no_grad():
                for p in self.teacher.parameters():
                    p.add_(1e-3 * torch.randn_like(p))
            self.unlabeled_mean.fill_(sum(float(u.mean()) for u in ctx.data.unlabeled) / len(ctx.data.unlabeled))

    def training_step(self, ctx: StepContext, batch: Batch) -> dict[str, Tensor]:
        logits = self.net(batch.image)
        terms = {"ce": cross_entropy(logits[: batch.labeled_bs], batch.label)}
        if ctx.stage == "main":
            with torch.no_grad():
                target = self.teacher(batch.unlabeled + self.unlabeled_mean)
            terms["consistency"] = softmax_mse(logits[batch.labeled_bs :], target)
        loss = sum(terms.values())
        ctx.step(loss, terms=terms)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def after_step(self, ctx: StepContext) -> None:
        if ctx.stage == "main":
            update_ema(self.teacher, self.net, 0.99, ctx.iteration)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[TwoStage]:
    monkeypatch.setitem(methods.registry._REGISTRY, TwoStage.name, TwoStage)
    return TwoStage


def config_for(root: Path, **extra: Any):
    overrides = {
        "dataset": "synthetic", "data_root": str(root), "labels": "4", "method": TwoStage.name, "iterations": 4,
        "patch": [32, 32, 16], "filters": 4, "checkpoint_every": 2, "validation": 2, "val_every": 1,
        "val_start": 0.0, "schedule": {"step_size": 1}, "eval": {"window": [32, 32, 16], "strides": [32, 32, 16]},
        "device": "cpu",
    } | extra
    return load_config(overrides)


def crash_at(monkeypatch: pytest.MonkeyPatch, stage: str, iteration: int) -> None:
    original = TwoStage.training_step

    def crash(self, ctx, batch):
        if (ctx.stage, ctx.iteration) == (stage, iteration):
            raise KeyboardInterrupt
        return original(self, ctx, batch)

    monkeypatch.setattr(TwoStage, "training_step", crash)


@pytest.mark.parametrize("selection", ["heldout", "last"])
def test_killed_inside_stage_one_at_the_boundary_and_inside_stage_two_resumes_exactly(
    fake: type[TwoStage], tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selection: str
) -> None:
    config, options = config_for(tiny_synthetic, selection=selection)
    Trainer(config, options, tmp_path / "straight", progress=False).fit()

    run = tmp_path / "resumed"
    original = TwoStage.training_step
    for stage, iteration, position in (("pre", 2, (0, 2)), ("main", 0, (1, 0)), ("main", 3, (1, 2))):
        crash_at(monkeypatch, stage, iteration)
        with pytest.raises(KeyboardInterrupt):
            Trainer(config, options, run, progress=False).fit()
        state = load_checkpoint(run / LATEST)
        assert (state["stage_index"], state["iteration"]) == position
        monkeypatch.setattr(TwoStage, "training_step", original)
    Trainer(config, options, run, progress=False).fit()

    a, b = (load_checkpoint(r / FINAL)["method_state"] for r in (tmp_path / "straight", run))
    assert a.keys() == b.keys() and any(k.startswith("teacher.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log_a, log_b = (pd.read_csv(r / "log.csv").drop(columns="seconds") for r in (tmp_path / "straight", run))
    pd.testing.assert_frame_equal(log_a, log_b)
    assert list(zip(log_a["stage"], log_a["iteration"])) == [("pre", 0), ("pre", 1), ("pre", 2)] + [
        ("main", i) for i in range(4)]
    if selection == "heldout":
        val_a, val_b = (pd.read_csv(r / "val.csv") for r in (tmp_path / "straight", run))
        pd.testing.assert_frame_equal(val_a, val_b)
        assert list(val_a["stage"]) == ["pre"] * 3 + ["main"] * 4


def test_stage_two_starts_from_the_selected_checkpoint_with_fresh_optimizer(
    fake: type[TwoStage], tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = iter([70.0, 60.0, 50.0, 1.0, 2.0, 3.0, 4.0])  # pre's best is after its first iteration
    monkeypatch.setattr(Trainer, "_validate", lambda self, cases: next(scores))
    config, options = config_for(tiny_synthetic)
    trainer = Trainer(config, options, tmp_path / "run", progress=False)
    reset = []
    original = TwoStage.on_stage_start

    def record(self, ctx):
        reset.append(all(not opt.state for opt in trainer.optimizers.values()))
        original(self, ctx)

    monkeypatch.setattr(TwoStage, "on_stage_start", record)
    trainer.fit()

    best = load_checkpoint(tmp_path / "run" / "checkpoint_best_pre.pt")
    assert (best["stage_index"], best["iteration"]) == (0, 1)
    started = trainer.method.started["main"]
    for key, value in started.items():
        assert torch.equal(value, best["method_state"][f"net.{key}"]), key
    assert reset == [True, True]  # fresh at the start, and reset again for "main"
    assert load_checkpoint(tmp_path / "run" / "checkpoint_best.pt")["stage_index"] == 1

    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log.loc[log["stage"] == "pre", "lr_main"].tolist() == pytest.approx([1e-2] * 3)  # constant
    assert log.loc[log["stage"] == "main", "lr_main"].tolist() == pytest.approx([1e-2, 1e-3, 1e-4, 1e-5])
    assert log.loc[log["stage"] == "main", "steps_main"].tolist() == [4, 5, 6, 7]


def test_under_last_selection_stage_two_continues_from_the_final_weights(
    fake: type[TwoStage], tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, options = config_for(tiny_synthetic, selection="last", iterations=2)
    trainer = Trainer(config, options, tmp_path / "run", progress=False)
    ends = []
    original = TwoStage.after_step

    def record(self, ctx):
        original(self, ctx)
        if ctx.stage == "pre":
            ends.append({k: v.clone() for k, v in self.net.state_dict().items()})

    monkeypatch.setattr(TwoStage, "after_step", record)
    trainer.fit()
    assert len(ends) == 2  # the stage's 3 iterations are capped by the run's 2
    for key, value in trainer.method.started["main"].items():
        assert torch.equal(value, ends[-1][key]), key
    assert not (tmp_path / "run" / "checkpoint_best_pre.pt").exists()
    stages = load_checkpoint(tmp_path / "run" / FINAL)["stage_index"]
    assert stages == 2


def test_a_bad_stage_plan_is_a_config_error(fake: type[TwoStage], tiny_synthetic: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    config, options = config_for(tiny_synthetic, selection="last")
    monkeypatch.setattr(TwoStage, "stages", lambda self, run: (Stage("a"), Stage("a")))
    with pytest.raises(ConfigError, match="unique names"):
        Trainer(config, options, tmp_path / "a", progress=False).fit()

    def too_small(self, run: RunInfo) -> tuple[Stage, ...]:
        raise ValueError(f"needs 100 unlabeled cases, got {run.n_unlabeled}")

    monkeypatch.setattr(TwoStage, "stages", too_small)
    with pytest.raises(ConfigError, match="two_stage_fake.*got 6"):
        Trainer(config, options, tmp_path / "b", progress=False).fit()


def test_pruned_run_keeps_the_weights_of_best_and_final_and_still_resumes_and_evaluates(
    fake: type[TwoStage], tiny_synthetic: Path, tmp_path: Path
) -> None:
    config, options = config_for(tiny_synthetic)
    Trainer(config, options, tmp_path / "full", progress=False).fit()
    assert {p.name for p in (tmp_path / "full").glob("*.pt")} == {LATEST, FINAL, BEST, "checkpoint_best_pre.pt"}
    pruned, _ = config_for(tiny_synthetic, prune_checkpoints=True)
    run = tmp_path / "pruned"
    Trainer(pruned, options, run, progress=False).fit()
    assert {p.name for p in run.glob("*.pt")} == {FINAL, BEST}
    for name in (FINAL, BEST):
        kept, full = load_checkpoint(run / name), load_checkpoint(tmp_path / "full" / name)
        assert "optimizers" not in kept and "scalers" not in kept and "optimizers" in full
        assert all(torch.equal(kept["method_state"][k], v) for k, v in full["method_state"].items())
    log = pd.read_csv(run / "log.csv")
    Trainer(pruned, options, run, progress=False).fit()  # a finished pruned run resumes from its final weights
    pd.testing.assert_frame_equal(pd.read_csv(run / "log.csv"), log)
    assert evaluate_run(run, progress=False)["checkpoint"] == BEST
