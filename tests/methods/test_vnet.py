"""The shared V-Net backbone and the supervised V-Net method."""

from __future__ import annotations

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_params
from methods.losses import consistency_weight, dice_loss, sigmoid_rampup
from methods.nets.vnet import Decoder, Encoder, VNet


def test_parameter_counts_match_the_official_networks() -> None:
    net = VNet()
    assert count_params(net) == 9_448_866
    assert count_params(net.encoder) == 7_376_896
    assert count_params(net.decoder) == 2_071_970
    assert count_params(VNet(num_classes=1)) == 9_448_849
    assert count_params(VNet(norm="instance")) == 9_443_266
    assert count_params(Decoder(up="trilinear")) == 2_898_850
    assert count_params(Decoder(up="nearest")) == 2_898_850
    assert count_params(Decoder(num_classes=1, heads=2)) == 2_071_970
    assert VNet(dropout=True).state_dict().keys() == net.state_dict().keys()


def test_encoder_and_decoder_shapes_and_stage_features() -> None:
    x = torch.randn(2, 1, 32, 32, 16)
    features = Encoder(filters=4)(x)
    assert [tuple(f.shape[1:]) for f in features] == [
        (4, 32, 32, 16), (8, 16, 16, 8), (16, 8, 8, 4), (32, 4, 4, 2), (64, 2, 2, 1)]
    out = Decoder(filters=4)(features, return_stages=True)
    assert out.logits.shape == (2, 2, 32, 32, 16)
    assert [tuple(f.shape[1:]) for f in out.stages] == [
        (64, 2, 2, 1), (32, 4, 4, 2), (16, 8, 8, 4), (8, 16, 16, 8), (4, 32, 32, 16)]
    assert Decoder(filters=4)(features).stages is None


def test_encoder_additions_enter_after_each_block() -> None:
    encoder = Encoder(filters=4).eval()
    x = torch.randn(1, 1, 32, 32, 16)
    plain = encoder(x)
    shift = [None, None, None, None, torch.full_like(plain[4], 0.5)]
    shifted = encoder(x, shift)
    for a, b in zip(plain[:4], shifted[:4]):
        assert torch.equal(a, b)
    assert torch.allclose(shifted[4], plain[4] + 0.5)


def test_dice_loss_by_hand() -> None:
    prob = torch.tensor([[0.5, 1.0, 0.0, 0.0]])
    target = torch.tensor([[1, 1, 0, 1]])
    # 1 - (2 * 1.5 + s) / (1.25 + 3 + s)
    assert dice_loss(prob, target).item() == pytest.approx(1 - (3 + 1e-5) / (4.25 + 1e-5))
    assert dice_loss(target.float(), target).item() == pytest.approx(0.0, abs=1e-6)


def test_ramp_matches_the_spec_table() -> None:
    expected = {0: 0.0067, 750: 0.0218, 1500: 0.0601, 3000: 0.2865, 4500: 0.7316, 6000: 1.0, 9000: 1.0}
    for t, value in expected.items():
        assert consistency_weight(t, 1.0) == pytest.approx(value, abs=1e-4)
    assert sigmoid_rampup(5, 0) == 1.0


def test_registry_lists_vnet_and_complexity_reports_official_count() -> None:
    assert "vnet" in methods.available_methods()
    with pytest.raises(methods.UnknownMethodError, match="unknown method 'nope'"):
        methods.get_method("nope")
    config, options = load_config({"method": "vnet"})
    result = complexity(config, options, (32, 32, 32))
    assert result["params"] == result["params_train"] == 9_448_866
    assert result["macs"] > 0


def test_supervised_loss_is_half_ce_plus_dice() -> None:
    _, options = load_config({"method": "vnet"})
    method = methods.get_method("vnet")(options, filters=4)
    image = torch.randn(2, 1, 32, 32, 16)
    label = (image[:, 0] > 0).long()
    ctx = FakeContext()
    out = ctx.run(method, methods.Batch(image, label))
    assert out["loss"].item() == pytest.approx(0.5 * (out["ce"].item() + out["dice"].item()))
    assert ctx.steps == [("main", pytest.approx(out["loss"].item()))]


def test_ema_update_by_hand() -> None:
    from methods.ema import make_teacher, update_ema

    student = torch.nn.Linear(1, 1, bias=False)
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        student.weight.fill_(1.0)
        teacher.weight.fill_(0.0)
    assert update_ema(teacher, student, 0.99, step=0) == 0.0  # first update copies the student
    assert teacher.weight.item() == 1.0
    with torch.no_grad():
        student.weight.fill_(3.0)
    assert update_ema(teacher, student, 0.99, step=1000) == 0.99
    assert teacher.weight.item() == pytest.approx(0.99 * 1.0 + 0.01 * 3.0)
