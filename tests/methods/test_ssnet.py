"""SS-Net: network size, VAT perturbation, class separation, prototype memory, one step, short training."""

from __future__ import annotations

import math

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_params
from methods.losses import consistency_weight
from methods.nets.ssnet import SSNetVNet
from methods.ssnet import (
    adversarial_perturbation,
    batch_statistics_only,
    class_separation_loss,
    select_prototypes,
    unit_normalize,
)
from methods.wu_losses import binary_dice_loss


def _method(**options) -> methods.Method:
    _, opts = load_config({"method": "ssnet", "options": options})
    return methods.get_method("ssnet")(opts, filters=4)


def test_parameter_counts_match_the_official_network() -> None:
    net = SSNetVNet()
    assert count_params(net) == 9_457_318
    assert count_params(net.encoder) + count_params(net.decoder) == 9_448_866
    assert (count_params(net.projection), count_params(net.prediction)) == (1_664, 2_176)
    assert count_params(net.selectors) + count_params(net.memory_selectors) == 4_612
    config, options = load_config({"method": "ssnet"})
    result = complexity(config, options, (32, 32, 32))
    assert result["params"] == result["params_train"] == 9_457_318
    assert result["macs"] == complexity(*load_config({"method": "vnet"}), (32, 32, 32))["macs"]  # heads not run


def test_variants_select_the_memory_behaviour() -> None:
    _, paper = load_config({"method": "ssnet"})
    _, official = load_config({"method": "ssnet", "options": {"variant": "official"}})
    assert (paper.memory_weights, paper.memory_selection) == ("normalised", "highest")
    assert (official.memory_weights, official.memory_selection) == ("ones", "lowest")
    assert paper.memory_classes == official.memory_classes == "foreground"


def test_unsquared_dice_by_hand() -> None:
    prob = torch.tensor([[0.5, 1.0, 0.0, 0.0]])
    target = torch.tensor([[1, 1, 0, 1]])
    assert binary_dice_loss(prob, target).item() == pytest.approx(1 - (3 + 1e-8) / (1.5 + 3 + 1e-8))
    a = torch.tensor([[[0.2, 0.6]], [[0.8, 0.4]]]).permute(1, 0, 2)  # (N=1, K=2, 2 voxels)
    b = torch.tensor([[[0.5, 1.0]], [[0.5, 0.0]]]).permute(1, 0, 2)
    agreement = (0.2 * 0.5 + 0.8 * 0.5 + 0.6 * 1.0 + 0.4 * 0.0) / 2
    assert binary_dice_loss(a, b).item() == pytest.approx(1 - agreement)


def test_adversarial_perturbation_has_norm_epsilon_along_the_gradient() -> None:
    # Class-1 logit 4 * x at voxel (0, 0, 0) everywhere: the distance depends on that voxel only, and
    # d D / d x_0 has the sign of -x_0 whatever the probe, so r_adv = -epsilon * sign(x_0) there, 0 elsewhere.
    def logits(x: torch.Tensor) -> torch.Tensor:
        v = 4 * x[:, :, :1, :1, :1].expand_as(x)
        return torch.cat([torch.zeros_like(v), v], 1)

    torch.manual_seed(0)
    x = torch.randn(2, 1, 4, 4, 2)
    x[0, 0, 0, 0, 0], x[1, 0, 0, 0, 0] = 0.3, -0.2
    target = logits(x).softmax(1)
    r = adversarial_perturbation(logits, x, target, xi=10.0, epsilon=10.0)
    expected = torch.zeros_like(x)
    expected[0, 0, 0, 0, 0], expected[1, 0, 0, 0, 0] = -10.0, 10.0
    assert torch.allclose(r, expected, atol=1e-5)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((2,), 10.0))
    assert not r.requires_grad
    d = unit_normalize(torch.randn(3, 1, 4, 4, 2))
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.ones(3))


def test_perturbed_passes_use_batch_statistics_without_updating_them() -> None:
    net = SSNetVNet(filters=4, dropout=0.5).train()
    x = torch.randn(2, 1, 32, 32, 16)
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    with batch_statistics_only(net):
        target = net(x).softmax(1).detach()
        adversarial_perturbation(net, x, target, 10.0, 10.0)
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert all(p.grad is None for p in net.parameters())
    net(x)
    key = "encoder.blocks.0.1.running_mean"
    assert not torch.equal(before[key], net.state_dict()[key])


def test_class_separation_by_hand() -> None:
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([1, 1])
    memory = [torch.zeros(0, 2), torch.tensor([[1.0, 0.0], [1.0, 1.0]])]
    distance = torch.tensor([[0.0, 1 - 1 / math.sqrt(2)], [1.0, 1 - 1 / math.sqrt(2)]])

    def zeros(v: torch.Tensor) -> torch.Tensor:
        return v.new_zeros(len(v), 1)

    def first(v: torch.Tensor) -> torch.Tensor:
        return v[:, :1]

    def second(v: torch.Tensor) -> torch.Tensor:
        return v[:, 1:]

    # uniform selectors: the mean distance over the 2 x 2 pairs, halved (two classes, only one has a memory)
    loss = class_separation_loss(z, labels, memory, [zeros, zeros], [zeros, zeros], 2)
    assert loss.item() == pytest.approx((3 - math.sqrt(2)) / 4 / 2)
    # feature weights 2 sigma(z_i1) / sum; memory weights from the normalised memory [1, 0], [0.707, 0.707]
    s = torch.sigmoid(torch.tensor([1.0, 0.0]))
    w = 2 * s / s.sum()
    s_m = torch.sigmoid(torch.tensor([0.0, 1 / math.sqrt(2)]))
    w_m = 2 * s_m / s_m.sum()
    ones = class_separation_loss(z, labels, memory, [zeros, first], None, 2)
    assert ones.item() == pytest.approx((w[:, None] * distance).mean().item() / 2)
    normalised = class_separation_loss(z, labels, memory, [zeros, first], [zeros, second], 2)
    assert normalised.item() == pytest.approx((w[:, None] * w_m[None] * distance).mean().item() / 2)
    # one voxel or one memory element: no term
    assert class_separation_loss(z[:1], labels[:1], memory, [zeros] * 2, None, 2).item() == 0.0
    assert class_separation_loss(z, labels, [memory[0], memory[1][:1]], [zeros] * 2, None, 2).item() == 0.0


def test_selector_learns_through_the_weights_only() -> None:
    torch.manual_seed(0)
    selector = torch.nn.Linear(2, 1)
    z = torch.randn(5, 2, requires_grad=True)
    loss = class_separation_loss(z, torch.ones(5, dtype=torch.long), [torch.zeros(0, 2), torch.randn(3, 2)],
                                 [selector, selector], None, 2)
    loss.backward()
    assert selector.weight.grad is not None and selector.weight.grad.abs().sum() > 0
    assert z.grad is not None


def test_prototype_selection_and_memory_update() -> None:
    candidates = torch.tensor([[0.0], [3.0], [1.0], [2.0]])
    assert select_prototypes(candidates, lambda v: v, 2, highest=True).tolist() == [[3.0], [2.0]]
    assert select_prototypes(candidates, lambda v: v, 2, highest=False).tolist() == [[0.0], [1.0]]
    assert torch.equal(select_prototypes(candidates, lambda v: v, 4), candidates)

    method = _method().train()
    x9 = torch.randn(1, 4, 2, 2, 1)
    label = torch.tensor([[[1], [1]], [[0], [1]]])[None]  # (1, 2, 2, 1)
    predicted = torch.tensor([[[1], [0]], [[0], [1]]])
    logits = torch.stack([1 - predicted, predicted])[None].float()
    method.update_memory(x9, logits, label)  # correct foreground at (0, 0) and (1, 1), background at (1, 0)
    assert method.prototype_counts.tolist() == [0, 2]
    assert method.net.projection.training
    with torch.no_grad():
        rows = method.net.projection.eval()(x9[0, :, [0, 1], [0, 1], 0].T)
    assert torch.allclose(method.memory()[1], rows)
    wrong = torch.zeros_like(logits)
    wrong[:, 0] = 1.0  # everything predicted background: no candidate, the memory stays
    method.update_memory(torch.randn_like(x9), wrong, label)
    assert method.prototype_counts.tolist() == [0, 2] and torch.allclose(method.memory()[1], rows)
    everything = _method(memory_classes="all")
    everything.update_memory(x9, logits, label)
    assert everything.prototype_counts.tolist() == [1, 2]


def test_training_step_combines_the_terms_with_the_t_plus_1_ramp() -> None:
    torch.manual_seed(0)
    method = _method().train()
    image = torch.randn(4, 1, 32, 32, 16)
    label = (image[:2, 0] > 0.5).long()
    ctx = FakeContext(iteration=149)  # the official counter is 150 when the weight is computed
    out = ctx.run(method, methods.Batch(image, label))
    assert set(out) == {"loss", "dice", "lds", "cs_l", "cs_u", "ce"}
    weight = consistency_weight(150, 1.0)
    assert weight == pytest.approx(math.exp(-5 * (1 - 1 / 40) ** 2))
    expected = out["dice"] + weight * (out["lds"] + 0.1 * (out["cs_l"] + out["cs_u"]))
    assert out["loss"].item() == pytest.approx(expected.item())
    assert ctx.steps == [("main", pytest.approx(out["loss"].item()))]
    assert method.prototype_counts[0] == 0 and method.prototype_counts[1] > 0
