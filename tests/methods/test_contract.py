"""The contract every registered method keeps with the harness (one parametrized test per property, like
timm's ``test_models.py``): state-dict round trip, prediction shape, finite logged terms, exact resume and
learning on the synthetic data within one shared budget table. A method registered before collection (a
new module of ``methods`` or a test file's method) is covered without a test of its own."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from runs import BUDGETS, DEFAULT_BUDGET, GAIN, dice_before_and_after, tiny_synthetic_run

import methods
from benchmarks.config import load_config
from benchmarks.runtime import build_method
from benchmarks.train.checkpoint import load_checkpoint
from benchmarks.train.trainer import FINAL, Trainer

METHODS = methods.available_methods()


def tiny(tiny_synthetic: Path, name: str, **settings: Any) -> dict[str, Any]:
    return tiny_synthetic_run(tiny_synthetic, method=name, device="cpu", **settings)


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip_and_predict_shape(name: str) -> None:
    config, options = load_config({"method": name, "filters": 4})
    torch.manual_seed(0)
    method = build_method(config, options).eval()
    torch.manual_seed(1)
    copy = build_method(config, options).eval()
    copy.load_state_dict(method.state_dict())
    x = torch.randn(2, config.in_channels, 32, 32, 16)
    with torch.no_grad():
        logits = method.predict(x)
        assert torch.equal(copy.predict(x), logits)
    assert logits.shape[0] == 2 and logits.shape[2:] == x.shape[2:]
    assert logits.shape[1] in (1, config.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", METHODS)
def test_logged_terms_are_finite_and_resume_is_exact(name: str, tiny_synthetic: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Three iterations per stage, straight and killed in the third iteration of the first stage then
    resumed: the same weights and log."""
    overrides = tiny(tiny_synthetic, name, labels="4", iterations=3, checkpoint_every=1,
                     **{k: v for k, v in BUDGETS.get(name, {}).items() if k in ("options", "labeled_bs", "unlabeled_bs")})
    config, options = load_config(overrides)
    Trainer(config, options, tmp_path / "straight", progress=False).fit()
    cls, original, calls = methods.get_method(name), methods.get_method(name).training_step, []

    def crash_at_third(self: methods.Method, ctx: methods.StepContext, batch: methods.Batch) -> None:
        calls.append(ctx.iteration)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self, ctx, batch)

    monkeypatch.setattr(cls, "training_step", crash_at_third)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, options, tmp_path / "resumed", progress=False).fit()
    monkeypatch.setattr(cls, "training_step", original)
    Trainer(config, options, tmp_path / "resumed", progress=False).fit()

    log = pd.read_csv(tmp_path / "straight" / "log.csv").drop(columns="seconds")
    terms = [c for c in log.columns if not c.startswith(("stage", "iteration", "lr_", "steps_"))]
    assert "loss" in terms and all(math.isfinite(v) for v in log[terms].to_numpy().ravel() if not pd.isna(v))
    pd.testing.assert_frame_equal(log, pd.read_csv(tmp_path / "resumed" / "log.csv").drop(columns="seconds"))
    a, b = (load_checkpoint(tmp_path / run / FINAL)["method_state"] for run in ("straight", "resumed"))
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_short_training_beats_an_untrained_network(name: str, tiny_synthetic: Path, tmp_path: Path) -> None:
    overrides = tiny(tiny_synthetic, name, **BUDGETS.get(name, DEFAULT_BUDGET))
    before, after = dice_before_and_after(overrides, tmp_path)
    assert after > before + GAIN, (after, before)
