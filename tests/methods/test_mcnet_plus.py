"""MC-Net+: network size, sharpening, mutual consistency, one step, prediction, short training."""

from __future__ import annotations

import math

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_params
from methods.losses import consistency_weight
from methods.mcnet_plus import mutual_consistency, sharpen
from methods.nets.mcnet import MultiDecoderVNet


def _method(**options) -> methods.Method:
    _, opts = load_config({"method": "mcnet_plus", "options": options})
    return methods.get_method("mcnet_plus")(opts, filters=4)


def test_parameter_counts_match_the_official_networks() -> None:
    net = MultiDecoderVNet()
    assert count_params(net) == 15_246_566
    assert [count_params(d) for d in net.decoders] == [2_071_970, 2_898_850, 2_898_850]
    assert count_params(net.encoder) + count_params(net.decoders[0]) == 9_448_866  # the test-time network
    assert count_params(MultiDecoderVNet(ups=("transposed", "trilinear"))) == 12_347_716  # MC-Net (v1)
    config, options = load_config({"method": "mcnet_plus"})
    result = complexity(config, options, (32, 32, 32))
    assert result["params"] == result["params_train"] == 15_246_566
    assert result["macs"] == complexity(*load_config({"method": "vnet"}), (32, 32, 32))["macs"]  # decoder 1 only
    assert config.schedule.name == "constant" and config.iterations == 15000


def test_sharpening_by_hand() -> None:
    p = torch.tensor([0.0, 0.5, 0.6, 0.4, 1.0])
    s = sharpen(p, 0.1)
    expected = [0.0, 0.5, 0.6**10 / (0.6**10 + 0.4**10), 0.4**10 / (0.6**10 + 0.4**10), 1.0]
    assert s.tolist() == pytest.approx(expected)
    assert s[2].item() == pytest.approx(0.982954, abs=1e-6)
    assert torch.allclose(sharpen(p, 1.0), p)


def test_mutual_consistency_by_hand() -> None:
    p1 = torch.tensor([0.6, 0.4]).view(1, 2, 1, 1, 1)  # one voxel, two channels
    p2 = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1, 1)
    s1 = 0.6**10 / (0.6**10 + 0.4**10)
    # (p1 - s(p2))^2 = 0.1^2 on both channels; (p2 - s(p1))^2 = (s1 - 0.5)^2 on both channels
    assert mutual_consistency([p1, p2], 0.1).item() == pytest.approx(0.01 + (s1 - 0.5) ** 2)
    p3 = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1, 1)
    pairs = sum(mutual_consistency([a, b], 0.1) for a, b in [(p1, p2), (p1, p3), (p2, p3)])  # 6 ordered pairs
    assert mutual_consistency([p1, p2, p3], 0.1).item() == pytest.approx(pairs.item())


def test_targets_are_not_detached_unless_asked() -> None:
    p1 = torch.tensor([0.7, 0.3], requires_grad=True)
    p2 = torch.tensor([0.2, 0.8], requires_grad=True)
    (g_detached,) = torch.autograd.grad(mutual_consistency([p1, p2], 0.1, detach_targets=True), p1)
    assert torch.allclose(g_detached, (p1 - sharpen(p2, 0.1)).detach())  # d/dp1 mean((p1 - s(p2))^2) over 2
    (g_full,) = torch.autograd.grad(mutual_consistency([p1, p2], 0.1), p1)
    assert not torch.allclose(g_full, g_detached)


def test_training_step_combines_the_terms_with_the_t_plus_1_ramp() -> None:
    torch.manual_seed(0)
    method = _method().train()
    image = torch.randn(4, 1, 32, 32, 16)
    label = (image[:2, 0] > 0.5).long()
    ctx = FakeContext(iteration=149)  # the official counter is 150 when the weight is computed
    out = ctx.run(method, methods.Batch(image, label))
    assert set(out) == {"loss", "dice", "mc", "ce"}
    weight = consistency_weight(150, 1.0)
    assert weight == pytest.approx(math.exp(-5 * (1 - 1 / 40) ** 2))
    assert out["loss"].item() == pytest.approx(0.5 * out["dice"].item() + weight * out["mc"].item())
    assert ctx.steps == [("main", pytest.approx(out["loss"].item()))]


def test_prediction_from_decoder_1_or_the_mean_probability() -> None:
    torch.manual_seed(0)
    method = _method().eval()
    x = torch.randn(1, 1, 32, 32, 16)
    averaged = _method(predict_from="mean").eval()
    averaged.load_state_dict(method.state_dict())
    with torch.no_grad():
        outputs = method.net(x)
        assert torch.equal(method.predict(x), outputs[0])
        mean = torch.stack([o.softmax(1) for o in outputs]).mean(0)
        assert torch.allclose(averaged.predict(x).softmax(1), mean, atol=1e-6)
