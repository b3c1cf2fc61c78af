"""FUSSNet: network sizes, the certain/uncertain partition and its losses by hand, stages, a short training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fakes import FakeContext
from torch import Tensor, nn

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import count_params
from methods.base import Batch, OptimizerSpec, RunInfo, TrainingData
from methods.fussnet import branch_losses
from methods.losses import sigmoid_rampup
from methods.nets.aleatoric import antithetic_samples


def make(filters: int = 4, **options):
    _, opts = load_config({"method": "fussnet", "options": options})
    return methods.get_method("fussnet")(opts, filters=filters)


def logits_of(fg: list[float]) -> Tensor:
    """(1, 2, 4, 1, 1) logits with the given foreground probabilities along X."""
    p = torch.tensor(fg)
    return torch.log(torch.stack([1 - p, p])).reshape(1, 2, len(fg), 1, 1)


class StubNet(nn.Module):
    """Returns fixed branch logits for any input (and a trunk feature for the aleatoric head)."""

    def __init__(self, branches: list[Tensor], filters: int = 4) -> None:
        super().__init__()
        self.branches, self.filters = branches, filters
        self.weight = nn.Parameter(torch.zeros(()))

    def trunk(self, x: Tensor) -> Tensor:
        return x.new_zeros(len(x), self.filters, *x.shape[2:]) + self.weight

    def heads(self, features: Tensor) -> list[Tensor]:
        return [b.expand(len(features), -1, -1, -1, -1) + 0 * self.weight for b in self.branches]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.heads(self.trunk(x))


# foreground decisions of the four branches on the four voxels of the crop
DECISIONS = [[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1], [1, 0, 0, 0]]
CERTAIN = [1, 1, 0, 0]  # (p0 == p2) & (p1 == p3)
PSEUDO = DECISIONS[2]  # the focal branch


def stubbed_method() -> tuple[methods.Method, TrainingData]:
    method = make()
    student = [logits_of([0.8 if d else 0.2 for d in ds]) for ds in DECISIONS]
    # the teacher agrees with the student on the certain voxels and says 0.5 on the uncertain ones
    teacher = [logits_of([0.8 if d else 0.2 for d in ds[:2]] + [0.5, 0.5]) for ds in DECISIONS]
    method.net, method.teacher = StubNet(student), StubNet(teacher)
    volume = np.zeros((4, 1, 1), np.float32)
    data = TrainingData([(volume, volume.astype(np.uint8))] * 2, [volume, volume])
    return method, data


def test_networks_have_the_contractual_parameter_counts() -> None:
    paper, official = make(16), make(16, variant="official")
    assert count_params(paper.segmenter()) == 9_464_152
    assert count_params(paper.aleatoric) == 408
    trained = {v: sum(p.numel() for p in m.optimizers(OptimizerSpec([]))["main"].params) for v, m in
               (("paper", paper), ("official", official))}
    assert trained == {"paper": 9_464_560, "official": 9_464_152}  # the official head is never optimised
    assert paper.optimizers(OptimizerSpec([], name="adam"))["main"].betas == (0.5, 0.999)
    config, _ = load_config({"method": "fussnet"})
    assert (config.optimizer.name, config.optimizer.lr, config.schedule.name, config.rotflip) == (
        "adam", 1e-3, "constant", False)


def test_certain_uncertain_partition_and_losses_by_hand() -> None:
    method, data = stubbed_method()
    batch = Batch(torch.zeros(4, 1, 4, 1, 1), torch.tensor([1, 1, 0, 0]).reshape(1, 4, 1, 1).repeat(2, 1, 1, 1),
                  torch.tensor([0, 1]), torch.tensor([0, 1]))
    terms = FakeContext(stage="self_train", data=data).run(method, batch)

    assert method.pseudo is not None and method.pseudo.shape == (2, 2, 4, 1, 1)
    assert method.pseudo[0, 0].flatten().tolist() == PSEUDO
    assert method.pseudo[0, 1].flatten().tolist() == CERTAIN
    assert terms["certain_fraction"].item() == 0.5

    # certain voxels 0 and 1, pseudo-label 1 on both; branch probabilities there:
    # CE 0.8, 0.8 | Dice 0.8, 0.2 | focal 0.8, 0.8 | IoU 0.8, 0.2
    s = 1e-5
    ce = -math.log(0.8)
    dice = 1 - 0.5 * (s / (1 + s) + (2 + s) / (3 + s))  # background (no target), foreground (target 1, 1)
    focal = -(0.2**2) * math.log(0.8)
    iou = 1 - 0.5 * (s / (1 + s) + (1 + s) / (2 + s))
    assert terms["certain"].item() == pytest.approx((ce + dice + focal + iou) / 4, rel=1e-5)
    # uncertain voxels 2 and 3: every branch is 0.3 away from the teacher's 0.5 -> 2 * 0.09 per voxel
    weight = sigmoid_rampup(0, 40)
    assert terms["consistency_weight"].item() == pytest.approx(weight)
    assert terms["uncertain"].item() == pytest.approx(weight * 0.18, rel=1e-5)
    total = terms["supervised"] + terms["certain"] + terms["uncertain"]
    assert terms["loss"].item() == pytest.approx(total.item(), rel=1e-6)


def test_official_certain_term_is_not_masked() -> None:
    logits = [logits_of([0.8, 0.8, 0.2, 0.2])] * 4
    target = torch.tensor([1, 1, 1, 1]).reshape(1, 4, 1, 1)
    region = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 4, 1, 1)
    voxelwise = branch_losses(logits, target, region)
    official = branch_losses(logits, target, region, voxelwise=False)
    assert voxelwise["ce"].item() == pytest.approx(-math.log(0.8))
    assert official["ce"].item() == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)
    assert official["dice"].item() == voxelwise["dice"].item()


def test_aleatoric_samples_collapse_to_the_mean_outside_the_labeled_foreground() -> None:
    method = make()
    features = torch.randn(2, 4, 16, 16, 16)
    mean, dist = method.aleatoric(features, torch.zeros(2, 16, 16, 16))
    torch.manual_seed(0)
    samples = antithetic_samples(dist, 20)
    assert samples.shape == (20, 2, 2 * 16**3)
    assert torch.allclose(samples.mean(0), mean.flatten(1), atol=1e-5)  # antithetic pairs cancel
    assert (samples - mean.flatten(1)).abs().max() < 0.05  # variance 2e-5 outside the labeled foreground


def test_stage_plans() -> None:
    la = make()
    pre, main = la.stages(RunInfo(16, 64, 15000))
    assert (pre.name, pre.iterations, pre.labeled_bs, pre.unlabeled_bs, pre.select_best) == (
        "pretrain", 800, 4, 0, True)
    assert (main.name, main.iterations, main.labeled_bs, main.unlabeled_bs, main.reset_optimizers) == (
        "self_train", 9632, 2, 2, False)
    assert [s.iterations for s in la.stages(RunInfo(8, 72, 15000))] == [400, 6020]
    assert [s.iterations for s in make(recipe="pancreas").stages(RunInfo(12, 50, 15000))] == [1800, 5025]
    assert la.stages(RunInfo(8, 72, 15000, "uniform"))[1].iterations is None
    assert make(epochs=None).stages(RunInfo(8, 72, 15000))[1].iterations is None


def test_stage_hand_over_refresh_schedule_and_resumable_pseudo_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    method = make()
    with torch.no_grad():
        for p in method.net.parameters():
            p.add_(1.0)
    method.on_stage_start(FakeContext(stage="self_train", data=TrainingData([], [])))
    pairs = zip(method.net.state_dict().values(), method.teacher.state_dict().values())
    assert all(torch.equal(s, t) for s, t in pairs)

    stubbed, data = stubbed_method()
    refreshed = []
    original = type(stubbed).refresh_pseudo_labels
    monkeypatch.setattr(type(stubbed), "refresh_pseudo_labels",
                        lambda self, ctx, patch: refreshed.append(ctx.iteration) or original(self, ctx, patch))
    batch = Batch(torch.zeros(4, 1, 4, 1, 1), torch.zeros(2, 4, 1, 1, dtype=torch.long), torch.tensor([0, 1]),
                  torch.tensor([1, 0]))
    for iteration in (0, 1, 9, 10, 11, 20):  # one pseudo-labeled step per epoch here: refresh every 10 epochs
        stubbed.training_step(FakeContext(iteration, stage="self_train", data=data), batch)
    assert refreshed == [0, 10, 20]

    fresh = make()
    fresh.net, fresh.teacher = StubNet([]), StubNet([])
    fresh.load_state_dict(stubbed.state_dict())
    assert torch.equal(fresh.pseudo, stubbed.pseudo)


def test_official_pseudo_labeled_crops_are_96_cubed() -> None:
    method = make(variant="official")
    crop = method._pseudo_crop(np.ones((130, 120, 88), np.float32), (112, 112, 80))
    assert crop.shape == (96, 96, 96)
    assert crop[:, :, :8].sum() == 0 and crop[:, :, -8:].sum() == 0 and crop[:, :, 8:-8].all()
