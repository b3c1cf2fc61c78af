"""ASE-Net: DyBAC network and discriminators, losses by hand, step order, EMA, recipe, short training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from fakes import FakeContext
from torch import nn

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_params
from benchmarks.runtime import build_method
from benchmarks.train.schedules import learning_rate
from methods.asenet import adversarial_loss, foreground, three_way_consistency
from methods.nets.asenet_discriminators import ImageDiscriminator, PixelDiscriminator
from methods.nets.dynamic import DynamicDepthwiseConv3d, DynamicVNet

SHAPE = (32, 32, 16)


def make(overrides: dict | None = None, filters: int = 4) -> methods.Method:
    _, options = load_config({"method": "asenet", "options": overrides or {}})
    return methods.get_method("asenet")(options, filters=filters)


class Ctx(FakeContext):
    """FakeContext that back-propagates each step (updating nothing) and records, as a dict per step, who got
    gradients and in which mode."""

    def __init__(self, method: methods.Method, iteration: int = 0) -> None:
        super().__init__(iteration, max_iterations=6000)
        self.method = method

    def step(self, loss, optimizer="main", terms=None):
        m = self.method
        m.zero_grad(set_to_none=True)
        loss.backward()
        self.log(terms or {})
        graded = {name for name in ("student", "teacher", "d_img", "d_pert")
                  if any(p.grad is not None for p in getattr(m, name).parameters())}
        self.steps.append({"optimizer": optimizer, "graded": graded, "terms": dict(terms or {}),
                           "modes": {n: getattr(m, n).training for n in ("student", "teacher", "d_img", "d_pert")}})


def batch(labeled: int = 2, unlabeled: int = 2) -> methods.Batch:
    image = torch.randn(labeled + unlabeled, 1, *SHAPE)
    return methods.Batch(image, (image[:labeled, 0] > 0.5).long())


def test_parameter_counts_match_the_spec() -> None:
    assert count_params(DynamicVNet()) == 1_357_664
    assert count_params(DynamicVNet(num_classes=1)) == 1_357_647
    assert count_params(DynamicVNet(variant="v2")) == 4_068_311
    assert count_params(DynamicVNet(num_classes=1, variant="v2")) == 4_068_294
    assert count_params(ImageDiscriminator()) == 255_567
    assert count_params(ImageDiscriminator(map_channels=2)) == 257_295
    assert count_params(PixelDiscriminator()) == 73_511
    for variant, params, train in (("paper", 1_357_664, 1_357_664 + 255_567 + 73_511),
                                   ("official", 9_448_849, 9_448_849 + 2 * 255_567)):
        config, options = load_config({"method": "asenet", "options": {"variant": variant}})
        result = complexity(config, options, (16, 16, 16))
        assert (result["params"], result["params_train"]) == (params, train)


def test_dybac_convolution_macs_match_the_spec() -> None:
    """Convolutions without biases, dynamic depthwise ones included: 4.37 G at 96^3 (8 x the count at 48^3)."""
    net, macs = DynamicVNet().eval(), []

    def hook(m: nn.Module, x: tuple[torch.Tensor, ...], y: torch.Tensor) -> None:
        if isinstance(m, DynamicDepthwiseConv3d):
            macs.append(27 * y.numel())
        elif isinstance(m, nn.ConvTranspose3d):
            macs.append(m.out_channels * math.prod(m.kernel_size) * x[0].numel())
        else:
            macs.append(m.in_channels // m.groups * math.prod(m.kernel_size) * y.numel())

    for m in net.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, DynamicDepthwiseConv3d)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 1, 48, 48, 48))
    assert 8 * sum(macs) / 1e9 == pytest.approx(4.37, abs=0.01)


def test_dynamic_convolution_mixes_kernels_per_sample() -> None:
    conv = DynamicDepthwiseConv3d(8, stride=2)
    x = torch.randn(3, 8, 8, 8, 6)
    pi = conv.attention(x)
    assert pi.shape == (3, 4) and torch.allclose(pi.sum(1), torch.ones(3))
    y = conv(x)
    assert y.shape == (3, 8, 4, 4, 3)
    for i in range(3):
        kernel = torch.einsum("k,kcabde->cabde", pi[i], conv.weight)
        expected = F.conv3d(x[i : i + 1], kernel, stride=2, padding=1, groups=8)
        assert torch.allclose(y[i : i + 1], expected, atol=1e-5)
    net = DynamicVNet(filters=4).eval()
    xb = torch.randn(2, 1, *SHAPE)
    with torch.no_grad():  # each sample's kernels depend on that sample only
        assert torch.allclose(net(xb)[:1], net(xb[:1]), atol=1e-5)


def test_losses_by_hand() -> None:
    image_logits = torch.tensor([[2.0, 0.0]])
    assert adversarial_loss(image_logits, True).item() == pytest.approx(math.log(1 + math.e**2))
    assert adversarial_loss(image_logits, False).item() == pytest.approx(math.log(1 + math.e**-2))
    pixel_logits = torch.full((1, 1, 2, 2, 2), 1.5)
    assert adversarial_loss(pixel_logits, True).item() == pytest.approx(math.log(1 + math.exp(-1.5)))
    assert adversarial_loss(pixel_logits, False).item() == pytest.approx(math.log(1 + math.exp(1.5)))

    def logits(p1: float) -> torch.Tensor:  # two-class logits whose softmax is (1 - p1, p1)
        return torch.tensor([0.0, math.log(p1 / (1 - p1))]).view(1, 2, 1, 1, 1)

    a, b, c = logits(0.5), logits(0.25), logits(0.75)
    # per channel: (0.5-0.75)^2 + (0.25-0.75)^2 + (0.5-0.25)^2 = 0.375, / 3
    assert three_way_consistency(a, b, c).item() == pytest.approx(0.125)
    assert three_way_consistency(*(torch.randn(2, 1, 3, 3, 3) for _ in range(3))).item() == 0.0
    assert foreground(logits(0.25)).item() == pytest.approx(0.25)
    assert foreground(torch.zeros(1, 1, 1, 1, 1) + math.log(3)).item() == pytest.approx(0.75)


class Stub(nn.Module):
    """Discriminator stand-in: constant logits (class 1 / voxel logit ``value``), records its inputs."""

    def __init__(self, pixel: bool, value: float = 5.0) -> None:
        super().__init__()
        self.pixel, self.value, self.calls = pixel, value, []
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, prob: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        self.calls.append((prob.detach().clone(), image))
        tie = self.bias + 0 * prob.mean()  # keeps prob (and the student) in the graph
        if self.pixel:
            return torch.full_like(prob, self.value) + tie
        return torch.tensor([[0.0, self.value]]).repeat(prob.shape[0], 1) + tie


def test_discriminator_targets_and_inputs() -> None:
    method = make()
    method.d_img, method.d_pert = Stub(pixel=False), Stub(pixel=True)
    b = batch()
    method.eval()
    with torch.no_grad():
        p_eval = foreground(method.student(b.image))
    method.train()
    out = Ctx(method).run(method, b)
    e = math.log(1 + math.exp(-5))  # the loss of a confident right answer; a wrong one costs 5 + e
    # D_img: labeled real, unlabeled fake; D_pix: teacher real, perturbed student fake; student: all real.
    assert out["d_img"].item() == pytest.approx(0.5 * (e + 5 + e), rel=1e-5)
    assert out["d_pert"].item() == pytest.approx(0.5 * (e + 5 + e), rel=1e-5)
    assert out["adv_img"].item() == pytest.approx(e, rel=1e-5) and out["adv_pert"].item() == pytest.approx(e, rel=1e-5)
    (p_l, x_l), (p_u, x_u), (_, x_a) = method.d_img.calls
    assert torch.equal(x_l, b.labeled) and torch.equal(x_u, b.unlabeled) and torch.equal(x_a, b.unlabeled)
    assert torch.allclose(p_l, p_eval[:2], atol=1e-5) and torch.allclose(p_u, p_eval[2:], atol=1e-5)  # S in eval
    (_, x_t), (p_n, x_n), (_, x_b) = method.d_pert.calls
    assert all(torch.equal(x, b.unlabeled) for x in (x_t, x_n, x_b))  # the clean image with every map
    assert not torch.allclose(p_n, p_u)  # the student's map of the perturbed input


def test_step_order_modes_gradients_and_total_loss() -> None:
    method = make()
    ctx = Ctx(method, iteration=0)
    out = ctx.run(method, batch())
    assert [s["optimizer"] for s in ctx.steps] == ["d_img", "d_pert", "main"]
    assert [s["graded"] for s in ctx.steps] == [{"d_img"}, {"d_pert"}, {"student"}]
    assert ctx.steps[0]["modes"] == {"student": True, "teacher": True, "d_img": True, "d_pert": True}
    assert ctx.steps[2]["modes"] == {"student": True, "teacher": True, "d_img": False, "d_pert": False}
    assert all(p.requires_grad for d in (method.d_img, method.d_pert) for p in d.parameters())
    assert set(out) == {"loss", "ce", "dice", "pcons", "adv_img", "adv_pert", "d_img", "d_pert", "weight"}
    assert out["weight"].item() == pytest.approx(math.exp(-5))
    adversarial = 0.5 * (out["adv_img"] + out["adv_pert"])
    expected = 0.5 * (out["ce"] + out["dice"]) + out["weight"] * (adversarial + out["pcons"])
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert ctx.steps[2]["terms"]["dice"].requires_grad  # paper: the Dice term trains the student
    late = make()
    assert Ctx(late, iteration=6000).run(late, batch())["weight"].item() == 1.0


def test_teacher_runs_in_train_mode_and_follows_the_ema_after_each_step() -> None:
    method = make()

    def bn(net: nn.Module) -> int:  # train-mode forwards seen by the first BatchNorm
        return int(next(m for m in net.modules() if isinstance(m, nn.BatchNorm3d)).num_batches_tracked)

    before = [p.clone() for p in method.teacher.parameters()]
    ctx = Ctx(method, iteration=0)
    method.training_step(ctx, batch())
    assert bn(method.teacher) == 2 and bn(method.student) == 2  # T on x_U and x_U + xi; S eval in step 1
    assert all(torch.equal(a, b) for a, b in zip(before, method.teacher.parameters()))
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(1.0)
    method.after_step(ctx)  # t = 0: alpha = 0, the teacher copies the student
    assert all(torch.equal(t, s) for t, s in zip(method.teacher.parameters(), method.student.parameters()))
    old = [p.clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(1.0)
    method.after_step(Ctx(method, iteration=1000))
    for t, o, s in zip(method.teacher.parameters(), old, method.student.parameters()):
        assert torch.allclose(t, 0.99 * o + 0.01 * s)


def test_recipe_optimizers_and_schedule() -> None:
    config, options = load_config({"method": "asenet"})
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs) == (6000, 2, 2)
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.weight_decay) == ("adam", 1e-3, 0.0)
    lrs = [learning_rate(config.optimizer.lr, t, 6000, config.schedule) for t in (0, 2500, 4999, 5000, 5999)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4])
    method = build_method(config, options)
    main_spec = methods.OptimizerSpec(params=[], name="adam", lr=1e-3, weight_decay=0.0)
    specs = method.optimizers(main_spec)
    assert set(specs) == {"main", "d_img", "d_pert"}
    assert specs["main"].params == list(method.student.parameters()) and specs["main"].betas == (0.9, 0.99)
    for name in ("d_img", "d_pert"):
        spec = specs[name]
        assert spec.params == list(getattr(method, name).parameters())
        assert (spec.name, spec.lr, spec.betas, spec.weight_decay) == ("adam", 1e-3, (0.9, 0.99), 0.0)
        assert not spec.scheduled
    official, _ = load_config({"method": "asenet", "options": {"variant": "official"}})
    assert (official.labeled_bs, official.unlabeled_bs) == (1, 1)


def test_official_variant_keeps_the_repository_behaviour() -> None:
    method = make({"variant": "official"})
    o = method.options
    assert (o.backbone, o.head, o.consistency_discriminator, o.dice_grad) == ("vnet", "sigmoid", "image", False)
    assert isinstance(method.d_pert, ImageDiscriminator) and not isinstance(method.student, DynamicVNet)
    ctx = Ctx(method)
    b = batch(1, 1)
    out = ctx.run(method, b)
    assert out["pcons"].item() == 0.0  # softmax over one channel
    assert not ctx.steps[2]["terms"]["dice"].requires_grad  # Dice from the no-gradient eval-mode pass
    method.eval()
    with torch.no_grad():
        logits = method.predict(b.image)
    assert logits.shape == (2, 1, *SHAPE)
    assert out["ce"].item() > 0 and make({"predict_with": "teacher"}).predict(b.image).shape == (2, 2, *SHAPE)
