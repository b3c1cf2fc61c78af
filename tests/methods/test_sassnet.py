"""SASSNet: network sizes, the ground-truth SDF, generator and discriminator steps, short training."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import FakeContext

import methods
from benchmarks.config import load_config, resolve_options
from benchmarks.report.complexity import complexity, count_params
from benchmarks.runtime import build_method
from methods.base import RunInfo
from methods.nets.dual_head import DualHeadVNet
from methods.nets.fc_discriminator import FCDiscriminator3D
from methods.sassnet import SASSNet, adversarial_weight
from methods.sdf import shape_losses, signed_distance, signed_distance_batch


class Ctx(FakeContext):
    """FakeContext that back-propagates each step's loss and records, per step, which modules got
    gradients (without updating anything)."""

    def __init__(self, method: SASSNet, iteration: int = 0) -> None:
        super().__init__(iteration, max_iterations=6000)
        self.method = method

    def step(self, loss: torch.Tensor, optimizer: str = "main", terms: Any = None) -> None:
        self.method.zero_grad(set_to_none=True)
        loss.backward()
        self.log(terms or {})
        grads = [any(p.grad is not None for p in m.parameters()) for m in (self.method.net, self.method.discriminator)]
        self.steps.append((optimizer, loss.item(), *grads))


def make(**options: Any) -> SASSNet:
    torch.manual_seed(0)
    method = SASSNet(resolve_options(SASSNet, {"d_width": 4, **options}), filters=4).train()
    method.stages(RunInfo(16, 64, 6000))
    return method


def batch() -> methods.Batch:
    g = torch.Generator().manual_seed(1)
    image = torch.randn(4, 1, 16, 16, 16, generator=g)
    return methods.Batch(image, (image[:2, 0] > 0.5).long())


def test_parameter_counts_and_optimizers() -> None:
    assert count_params(DualHeadVNet()) == 9_448_866
    assert count_params(FCDiscriminator3D()) == 11_020_290
    assert count_params(FCDiscriminator3D().conv4) == 8_389_120
    config, options = load_config({"method": "sassnet"})
    result = complexity(config, options, (32, 32, 32))
    assert result["macs_train"] == result["macs"]  # the discriminator is not part of the segmentation network
    assert result | {"macs": 0, "macs_train": 0} == {
        "params": 9_448_866, "params_train": 9_448_866 + 11_020_290, "params_inference": 9_448_866, "macs": 0,
        "macs_train": 0}
    method = build_method(config, options)
    specs = method.optimizers(methods.OptimizerSpec([]))
    assert {id(p) for p in specs["main"].params} == {id(p) for p in method.net.parameters()}
    d = specs["discriminator"]
    assert {id(p) for p in d.params} == {id(p) for p in method.discriminator.parameters()}
    assert (d.name, d.lr, d.betas, d.weight_decay, d.scheduled) == ("adam", 1e-4, (0.9, 0.99), 0.0, False)
    assert specs["main"].scheduled


def test_dual_head_outputs_and_prediction() -> None:
    method = make().eval()
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        out = method.net.decoder(method.net.encoder(x)).logits
        sdf, seg = method.net(x)
        assert torch.equal(sdf, torch.tanh(out[:, :1])) and torch.equal(seg, out[:, 1:])
        assert torch.equal(method.predict(x), seg) and seg.shape == (2, 1, 16, 16, 16)
    assert FCDiscriminator3D(ndf=4)(torch.zeros(3, 1, 32, 32, 16), torch.zeros(3, 1, 32, 32, 16)).shape == (3, 2)


def test_sdf_of_a_cube_by_hand() -> None:
    mask = np.zeros((7, 7, 7), bool)
    mask[2:5, 2:5, 2:5] = True
    sdf = signed_distance(mask)
    assert sdf[3, 3, 3] == -1.0  # the only interior voxel: 2 voxels from the background, the maximum
    inner = mask.copy()
    inner[3, 3, 3] = False
    assert (sdf[inner] == 0).all()  # the inner boundary: every other voxel of the cube
    far = math.sqrt(12)  # corner (0, 0, 0) to the cube corner (2, 2, 2), the largest outside distance
    assert sdf[0, 0, 0] == sdf[6, 6, 6] == pytest.approx(1.0)
    assert sdf[1, 3, 3] == pytest.approx(1 / far) and sdf[0, 3, 3] == pytest.approx(2 / far)
    assert sdf[1, 1, 3] == pytest.approx(math.sqrt(2) / far)


def test_sdf_has_no_surface_at_the_crop_border() -> None:
    mask = np.zeros((6, 4, 4), bool)
    mask[:3] = True  # a slab cut by the crop border at x = 0 and on all y, z sides
    sdf = signed_distance(mask)
    assert sdf[:, 1, 1].tolist() == pytest.approx([-1.0, -2 / 3, 0.0, 1 / 3, 2 / 3, 1.0])
    assert np.array_equal(sdf, np.broadcast_to(sdf[:, :1, :1], sdf.shape))
    assert (signed_distance(np.zeros((4, 4, 4))) == 0).all()
    assert (signed_distance(np.ones((4, 4, 4))) == -1).all()  # official: NaN
    labels = torch.from_numpy(np.stack([mask, ~mask])).long()
    batch_sdf = signed_distance_batch(labels)
    assert batch_sdf.dtype == torch.float32 and batch_sdf.shape == (2, 6, 4, 4)
    assert torch.allclose(batch_sdf[0], torch.from_numpy(sdf).float())


def test_adversarial_weight_follows_the_label_count() -> None:
    for n_labeled, n_unlabeled, expected in [
        (8, 72, 0.015), (8, 64, 0.015), (16, 64, 0.01), (16, 56, 0.01),  # LA, selection last / heldout
        (6, 56, 0.015), (6, 50, 0.015), (12, 50, 0.01), (12, 44, 0.01),  # pancreas
        (10, 40, 0.01), (15, 30, 0.01),                                    # lung
    ]:
        assert adversarial_weight(n_labeled, n_unlabeled) == expected
    method = make(adv_weight=0.02)
    method.stages(RunInfo(8, 72, 6000))
    assert method.adv_weight == 0.02
    unplanned = SASSNet(resolve_options(SASSNet, {"d_width": 4}), filters=4)
    with pytest.raises(RuntimeError, match="adv_weight"):
        unplanned.training_step(Ctx(unplanned), batch())


class StubD(torch.nn.Module):
    """Fixed logits per row (plus a term carrying gradients to its inputs); records each call."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.calls: list[tuple[bool, torch.Tensor, torch.Tensor]] = []

    def forward(self, shape_map: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, shape_map.detach().clone(), image))
        logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5], [1.0, -1.0]])[: len(shape_map)]
        return logits + 0 * self.w * shape_map.mean((1, 2, 3, 4))[:, None]


def test_generator_and_discriminator_steps() -> None:
    method = make()
    method.discriminator = StubD()
    b = batch()
    ctx = Ctx(method, iteration=1500)
    torch.manual_seed(3)
    out = ctx.run(method, b)

    (g_train, _, g_image), (d_train, d_map, d_image) = method.discriminator.calls
    assert not g_train and d_train  # eval mode while the segmenter learns, training mode for its own step
    assert torch.equal(g_image, b.image[2:]) and torch.equal(d_image, b.image)
    stub = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5], [1.0, -1.0]])
    assert out["adv"].item() == pytest.approx(F.cross_entropy(stub[:2], torch.tensor([1, 1])).item())
    assert out["d_loss"].item() == pytest.approx(F.cross_entropy(stub, torch.tensor([1, 1, 0, 0])).item())
    method.eval()
    with torch.no_grad():
        assert torch.allclose(d_map, method.net(b.image)[0])  # the discriminator sees eval-mode SDFs
    weight = 0.01 * math.exp(-5 * (1 - 10 / 40) ** 2)
    assert out["adv_weight"].item() == pytest.approx(weight)
    assert out["loss"].item() == pytest.approx((out["dice"] + 0.3 * out["sdf"] + weight * out["adv"]).item())
    # generator step: gradients reach the segmenter only; discriminator step: the discriminator only
    assert [s[0] for s in ctx.steps] == ["main", "discriminator"]
    assert ctx.steps[0][2:] == (True, False) and ctx.steps[1][2:] == (False, True)
    assert set(out) == {"loss", "dice", "sdf", "adv", "adv_weight", "d_loss"}


def test_supervised_terms_by_hand() -> None:
    label = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    label[0, :2] = 1
    seg = torch.zeros(1, 1, 4, 4, 4)  # p = 0.5 everywhere
    sdf = torch.zeros(1, 1, 4, 4, 4)
    dice, mse = shape_losses(sdf, seg, label)
    assert dice.item() == pytest.approx(1 - (2 * 16 + 1e-5) / (64 * 0.25 + 32 + 1e-5))
    phi = signed_distance(label[0].numpy())
    assert mse.item() == pytest.approx(float((phi**2).mean()), rel=1e-6)
