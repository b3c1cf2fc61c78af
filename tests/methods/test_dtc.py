"""DTC: network size, the SDF-to-mask transform, dual-task consistency on all rows, short training."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config, resolve_options
from benchmarks.report.complexity import complexity
from benchmarks.runtime import build_method
from methods.dtc import DTC, sdf_to_mask
from methods.sdf import shape_losses


def make(**options: Any) -> DTC:
    torch.manual_seed(0)
    return DTC(resolve_options(DTC, options), filters=4).train()


def test_parameter_counts_and_recipe() -> None:
    config, options = load_config({"method": "dtc"})
    counts = complexity(config, options, (32, 32, 32))
    assert counts["params"] == counts["params_train"] == 9_448_866
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs) == (6000, 2, 2)
    assert list(build_method(config, options).optimizers(methods.OptimizerSpec([]))) == ["main"]


def test_transform_sign_negative_distance_is_foreground() -> None:
    d = torch.tensor([-0.01, -0.001, 0.0, 0.001, 0.01])
    mask = sdf_to_mask(d)
    assert mask[0].item() > 1 - 1e-6 and mask[-1].item() < 1e-6
    assert mask[2].item() == 0.5
    assert mask[1].item() == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert mask[3].item() == pytest.approx(1 / (1 + math.exp(1.5)))


class FixedNet(torch.nn.Module):
    """Labeled rows: SDF -0.5 (inside) and seg logit 0 (p = 0.5); unlabeled rows: SDF +0.5 (outside) and
    a confident foreground logit 20 (p ~ 1)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sign = torch.tensor([-1.0, -1.0, 1.0, 1.0]).reshape(4, 1, 1, 1, 1)
        sdf = 0.5 * sign.expand(4, 1, *x.shape[2:])
        seg = (10 * (sign + 1)).expand(4, 1, *x.shape[2:])
        return sdf, seg


def test_consistency_covers_labeled_and_unlabeled_rows() -> None:
    method = make()
    method.net = FixedNet()
    image = torch.zeros(4, 1, 8, 8, 8)
    label = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    label[:, 2:6, 2:6, 2:6] = 1
    ctx = FakeContext(iteration=6000, max_iterations=6000)
    out = ctx.run(method, methods.Batch(image, label))
    # labeled rows: (1 - 0.5)^2 = 0.25; unlabeled rows: (0 - 1)^2 = 1; mean over the four rows
    assert out["consistency"].item() == pytest.approx((2 * 0.25 + 2 * 1.0) / 4, abs=1e-6)
    assert out["consistency_weight"].item() == 1.0
    sdf, seg = FixedNet()(image)
    dice, mse = shape_losses(sdf[:2], seg[:2], label)
    assert (out["dice"].item(), out["sdf"].item()) == pytest.approx((dice.item(), mse.item()))
    assert out["loss"].item() == pytest.approx(dice.item() + 0.3 * mse.item() + out["consistency"].item())
    assert ctx.steps == [("main", pytest.approx(out["loss"].item()))]
    assert set(out) == {"loss", "dice", "sdf", "consistency", "consistency_weight"}


def test_consistency_weight_ramps_and_gradients_reach_both_heads() -> None:
    method = make()
    g = torch.Generator().manual_seed(1)
    image = torch.randn(4, 1, 16, 16, 16, generator=g)
    ctx = FakeContext(iteration=750, max_iterations=6000)
    out = ctx.run(method, methods.Batch(image, (image[:2, 0] > 0.5).long()))
    assert out["consistency_weight"].item() == pytest.approx(math.exp(-5 * (1 - 5 / 40) ** 2))
    sdf, seg = method.net(image)
    ((sdf_to_mask(sdf) - torch.sigmoid(seg)) ** 2).mean().backward()
    heads = method.net.decoder.heads
    assert heads[0].weight.grad.abs().sum() > 0 and heads[1].weight.grad.abs().sum() > 0


def test_predict_is_the_segmentation_head() -> None:
    method = make().eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(method.predict(x), method.net(x)[1])
