"""UA-MT: network size, uncertainty mask, masked consistency, teacher passes, EMA, short training."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config, resolve_options
from benchmarks.report.complexity import complexity
from methods.losses import cross_entropy, dice_loss
from methods.uamt import UAMT, entropy_threshold, masked_consistency, predictive_entropy


def make(**options: Any) -> UAMT:
    torch.manual_seed(0)
    return UAMT(resolve_options(UAMT, options), filters=4).train()


def batch() -> methods.Batch:
    g = torch.Generator().manual_seed(1)
    image = torch.randn(4, 1, 16, 16, 16, generator=g)
    return methods.Batch(image, (image[:2, 0] > 0.5).long())


def test_parameter_counts_and_recipe() -> None:
    config, options = load_config({"method": "uamt"})
    counts = complexity(config, options, (32, 32, 32))
    assert counts["params"] == counts["params_train"] == 9_448_866
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs) == (6000, 2, 2)
    method = make()
    assert not any(p.requires_grad for p in method.teacher.parameters())
    trained = {id(p) for spec in method.optimizers(methods.OptimizerSpec([])).values() for p in spec.params}
    assert trained == {id(p) for p in method.student.parameters()}


def test_threshold_ramps_from_three_quarters_of_ln2_on_raw_iterations() -> None:
    ln2 = math.log(2)
    assert entropy_threshold(0, 6000) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * ln2)
    assert entropy_threshold(0, 6000) == pytest.approx(0.521, abs=5e-4)  # uamt.md: 0.521
    assert entropy_threshold(3000, 6000) == pytest.approx((0.75 + 0.25 * math.exp(-1.25)) * ln2)
    assert entropy_threshold(6000, 6000) == entropy_threshold(15000, 6000) == pytest.approx(ln2)


def test_mask_at_a_known_entropy_and_iteration() -> None:
    probs = torch.tensor([0.8, 0.75, 0.5]).reshape(1, 1, 3, 1, 1)
    entropy = predictive_entropy(torch.cat([probs, 1 - probs], 1))[0, 0, :, 0, 0]
    h = lambda p: -(p * math.log(p + 1e-6) + (1 - p) * math.log(1 - p + 1e-6))
    assert entropy.tolist() == pytest.approx([h(0.8), h(0.75), h(0.5)], abs=1e-6)  # 0.500, 0.562, 0.693 nats
    assert (entropy < entropy_threshold(0, 6000)).tolist() == [True, False, False]
    assert (entropy < entropy_threshold(6000, 6000)).tolist() == [True, True, True]  # log(0.5 + 1e-6) < ln 2


def test_masked_consistency_by_hand() -> None:
    student = torch.zeros(1, 2, 2, 1, 1)  # softmax (0.5, 0.5) at both voxels
    teacher = torch.zeros(1, 2, 2, 1, 1)
    teacher[0, 0, 0] = math.log(3)  # voxel 0: (0.75, 0.25); voxel 1: (0.5, 0.5) but masked out
    teacher[0, 0, 1] = 5.0
    mask = torch.tensor([1.0, 0.0]).reshape(1, 1, 2, 1, 1)
    # (0.25^2 + 0.25^2) / (2 * 1)
    assert masked_consistency(student, teacher, mask).item() == pytest.approx(0.0625)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert masked_consistency(student, teacher, mask, "kl").item() == pytest.approx(kl / 2)
    assert masked_consistency(student, teacher, torch.zeros_like(mask)).item() == 0.0


def test_uncertainty_averages_the_two_copies_of_each_row() -> None:
    method = make(noise_std=0.0)

    class Teacher(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, torch.zeros_like(x)], 1)

    method.teacher = Teacher()
    x = torch.stack([torch.full((1, 2, 2, 2), 2.0), torch.full((1, 2, 2, 2), -1.0)])
    p = torch.sigmoid(torch.tensor([2.0, -1.0]))
    expected = -(p * torch.log(p + 1e-6) + (1 - p) * torch.log(1 - p + 1e-6))
    assert method.uncertainty(x)[:, 0, 0, 0, 0] == pytest.approx(expected.tolist(), abs=1e-6)


@pytest.mark.parametrize(("options", "teacher_batches"), [
    ({}, [2, 4, 4, 4, 4]),                          # target pass + T/2 = 4 MC passes of the repeated pair
    ({"consistency_rows": "all"}, [4, 8, 8, 8, 8]),
    ({"uncertainty_threshold": "none"}, [2]),
])
def test_teacher_passes_and_total_loss(options: dict[str, Any], teacher_batches: list[int]) -> None:
    method = make(**options)
    seen: list[int] = []
    method.teacher.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    ctx = FakeContext(iteration=3000, max_iterations=6000)
    out = ctx.run(method, batch())
    assert seen == teacher_batches
    assert method.teacher.training  # MC dropout: the teacher stays in training mode
    weight = 0.1 * math.exp(-5 * (1 - 20 / 40) ** 2)
    assert out["consistency_weight"].item() == pytest.approx(weight)
    expected = 0.5 * (out["ce"] + out["dice"]) + weight * out["consistency"]
    assert out["loss"].item() == pytest.approx(expected.item())
    assert ctx.steps == [("main", pytest.approx(out["loss"].item()))]
    assert set(out) == {"loss", "ce", "dice", "consistency", "consistency_weight", "certain"}
    if "uncertainty_threshold" in options:
        assert out["certain"].item() == 1.0


def test_supervised_terms_use_the_labeled_rows_only() -> None:
    method = make(uncertainty_threshold="none")
    b = batch()
    torch.manual_seed(5)
    out = FakeContext(max_iterations=6000).run(method, b)
    torch.manual_seed(5)
    logits = method.student(b.image)
    assert out["ce"].item() == pytest.approx(cross_entropy(logits[:2], b.label).item(), rel=1e-5)
    assert out["dice"].item() == pytest.approx(dice_loss(logits[:2].softmax(1)[:, 1], b.label).item(), rel=1e-5)


def test_ema_copies_the_student_first_and_then_averages() -> None:
    method = make()
    opt = torch.optim.SGD(method.student.parameters(), lr=0.1)
    ctx = FakeContext(iteration=0, max_iterations=6000, optimizers={"main": opt})
    method.training_step(ctx, batch())
    assert all(p.grad is None for p in method.teacher.parameters())
    method.after_step(ctx)  # t = 0: alpha = 0, the teacher becomes the student
    for t, s in zip(method.teacher.parameters(), method.student.parameters()):
        assert torch.equal(t, s)
    before = [t.clone() for t in method.teacher.parameters()]
    ctx.iteration = 200  # alpha = min(1 - 1/201, 0.99) = 0.99
    method.training_step(ctx, batch())
    method.after_step(ctx)
    for t, b, s in zip(method.teacher.parameters(), before, method.student.parameters()):
        assert torch.allclose(t, 0.99 * b + 0.01 * s, atol=1e-7)
