"""LeFeD: network size, variants and Table IV presets, discrepancy feedback, encodings, losses, steps."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config, parse_sets, resolve_options
from benchmarks.errors import ConfigError
from benchmarks.report.complexity import complexity, count_macs, count_params
from methods.lefed import ABLATIONS, DS_WEIGHTS, LeFeD, LeFeDOptions, deep_supervision_loss, encode
from methods.losses import cross_entropy, dice_loss, softmax_mse
from methods.nets.lefed import LeFeDNet, SideHeads
from methods.nets.vnet import VNet


def make(**options: Any) -> LeFeD:
    torch.manual_seed(0)
    return LeFeD(resolve_options(LeFeD, options), filters=4).train()


def batch(size: tuple[int, int, int] = (16, 16, 16)) -> methods.Batch:
    g = torch.Generator().manual_seed(1)
    image = torch.randn(4, 1, *size, generator=g)
    return methods.Batch(image, (image[:2, 0] > 0.5).long())


def test_parameter_counts_and_complexity_of_both_variants() -> None:
    net = LeFeDNet()
    assert count_params(net) == 12_348_718
    parts = {"encoder": 7_376_896, "decoder_a": 2_071_970, "decoder_b": 2_898_850, "side_heads": 1_002}
    assert {name: count_params(getattr(net, name)) for name in parts} == parts
    assert LeFeDNet(encoder_dropout=0.3, decoder_dropout=0.5).state_dict().keys() == net.state_dict().keys()
    vnet_macs = count_macs(VNet(), (1, 1, 32, 32, 32))
    for variant in ("paper", "official"):
        config, options = load_config({"method": "lefed", "options": {"variant": variant}})
        result = complexity(config, options, (32, 32, 32))
        assert result["params"] == result["params_train"] == 12_348_718
        assert result["macs"] == vnet_macs  # prediction runs the encoder and decoder A only


def test_variants_presets_and_run_defaults() -> None:
    paper = resolve_options(LeFeD, {})
    assert paper == LeFeDOptions()
    assert (paper.b_gating, paper.different_losses, paper.mse_rows, paper.encoding, paper.scales) == (
        False, True, "unlabeled", "a_minus_b", (1, 2, 3, 4))
    official = resolve_options(LeFeD, {"variant": "official"})
    assert (official.b_gating, official.different_losses, official.mse_rows, official.encoding, official.scales) == (
        True, False, "all", "b_minus_a", (1, 2, 3, 4, 5))
    for o in (paper, official):
        assert (o.t, o.lambda_, o.steps_per_batch, o.predict_from, o.encoder_dropout, o.decoder_dropout) == (
            3, 1e-3, "per_pass", "a", 0.3, 0.5)
    assert resolve_options(LeFeD, {"variant": "official", "encoding": "abs"}).encoding == "abs"

    config, _ = load_config({"method": "lefed", "dataset": "la"})
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs, config.patch) == (15000, 2, 2, (112, 112, 80))
    config, _ = load_config({"method": "lefed", "dataset": "la", "options": {"variant": "official"}})
    assert (config.iterations, config.patch) == (15000, (96, 96, 96))

    sets = ["t=4", "scales=[1,2]", "encoding=entropy", "ablation=IL+DL", "il_off_steps=t", "b_gating=true"]
    _, o = load_config({"method": "lefed", **parse_sets(sets)})
    assert (o.t, o.scales, o.encoding, o.different_losses, o.il_off_steps, o.b_gating) == (
        4, (1, 2), "entropy", True, "t", True)
    for bad in ({"scales": [0]}, {"scales": [1, 1]}, {"scales": []}, {"t": 0}, {"ablation": "IL+XX"},
                {"encoding": "a_plus_b"}, {"encoder_dropout": 1.0}):
        with pytest.raises(ConfigError):
            resolve_options(LeFeD, bad)


TABLE_IV = {  # row: feedback, different_losses, deep_supervision, scales
    "baseline": (False, False, False, (1, 2, 3, 4)),
    "IL": (True, False, False, (1, 2, 3, 4)),
    "IL+DL": (True, True, False, (1, 2, 3, 4)),
    "IL+DS": (True, False, True, (1, 2, 3, 4)),
    "DL+DS+S1": (True, True, True, (1,)),
    "DL+DS+S1+S2": (True, True, True, (1, 2)),
    "DL+DS+S1+S2+S3": (True, True, True, (1, 2, 3)),
    "full": (True, True, True, (1, 2, 3, 4)),
}


def test_table_iv_rows_switch_on_exactly_their_loss_terms() -> None:
    assert set(ABLATIONS) - {None} == set(TABLE_IV)
    assert resolve_options(LeFeD, {"ablation": "full"}) == dataclasses.replace(LeFeDOptions(), ablation="full")
    for row, (il, dl, ds, scales) in TABLE_IV.items():
        o = resolve_options(LeFeD, {"ablation": row})
        assert (o.feedback, o.different_losses, o.deep_supervision, o.scales) == (il, dl, ds, scales), row
        ctx = FakeContext()
        terms = ctx.run(make(ablation=row), batch())
        expected = {"loss", "dice_a", "ce_b" if dl else "dice_b", "mse", *["ds"] * ds, *["feedback_abs"] * il}
        assert set(terms) == expected, row
        assert len(ctx.steps) == (3 if il else 1), row
        parts = sum(v for k, v in terms.items() if k not in ("loss", "feedback_abs"))
        assert terms["loss"].item() == pytest.approx(parts.item(), rel=1e-5), row
        assert all(not v.requires_grad and v.shape == () for v in terms.values())


@pytest.mark.parametrize(("options", "steps"), [
    ({"variant": "official"}, 3), ({"variant": "official", "t": 2}, 2), ({}, 3), ({"t": 4}, 4),
    ({"steps_per_batch": "once"}, 1), ({"feedback": False}, 1), ({"feedback": False, "il_off_steps": "t"}, 3),
])
def test_optimizer_steps_per_batch(options: dict[str, Any], steps: int) -> None:
    method = make(**options)
    ctx = FakeContext(optimizers={"main": torch.optim.SGD(method.parameters(), lr=0.01)})
    before = [p.detach().clone() for p in method.net.encoder.parameters()]
    terms = ctx.run(method, batch())
    assert len(ctx.steps) == steps
    assert any(not torch.equal(a, p) for a, p in zip(before, method.net.encoder.parameters()))
    if options.get("steps_per_batch") == "once":
        assert ctx.steps == [("main", pytest.approx(terms["loss"].item()))]


def record_passes(method: LeFeD) -> tuple[list[Any], list[Any], list[Any]]:
    """Encoder inputs ``(x, additions)`` and decoder outputs of every pass."""
    inputs: list[Any] = []
    outs_a: list[Any] = []
    outs_b: list[Any] = []
    method.net.encoder.register_forward_pre_hook(lambda m, args: inputs.append(args))
    method.net.decoder_a.register_forward_hook(lambda m, args, out: outs_a.append(out))
    method.net.decoder_b.register_forward_hook(lambda m, args, out: outs_b.append(out))
    return inputs, outs_a, outs_b


@pytest.mark.parametrize("options", [
    {"lambda": 0.5, "scales": [1, 3]},
    {"variant": "official"},
    {"encoding": "abs", "scales": [2, 4]},
])
def test_feedback_is_the_detached_discrepancy_of_the_previous_pass(options: dict[str, Any]) -> None:
    method = make(**options)
    o = method.options
    inputs, outs_a, outs_b = record_passes(method)
    data = batch()
    method.training_step(FakeContext(optimizers={"main": torch.optim.SGD(method.parameters(), lr=0.1)}), data)
    assert len(inputs) == o.t
    assert all(torch.equal(x, data.image) for x, _ in inputs)  # the same batch in every pass
    assert inputs[0][1] is None  # pass 1 has no feedback
    for k in range(1, o.t):
        additions = inputs[k][1]
        a, b = outs_a[k - 1].stages, outs_b[k - 1].stages
        for s in range(1, 6):
            d = additions[s - 1]
            if s not in o.scales:
                assert d is None
                continue
            diff = {"a_minus_b": a[5 - s] - b[5 - s], "b_minus_a": b[5 - s] - a[5 - s],
                    "abs": (a[5 - s] - b[5 - s]).abs()}[o.encoding]
            assert d.grad_fn is None and not d.requires_grad
            assert torch.equal(d, o.lambda_ * diff.detach())
            assert d.abs().sum() > 0
    if o.b_gating:  # official: the bottleneck term is lambda * x5 * sigmoid(x5)
        x5 = outs_a[0].stages[0]
        assert torch.allclose(inputs[1][1][4], 1e-3 * x5 * torch.sigmoid(x5))


@pytest.mark.parametrize("options", [{"lambda": 0.0}, {"feedback": False, "il_off_steps": "t"}])
def test_without_feedback_every_pass_equals_a_plain_pass(options: dict[str, Any]) -> None:
    method = make(encoder_dropout=0.0, decoder_dropout=0.0, **options)
    data = batch()
    plain_a, plain_b = method.net(data.image)  # one pass without feedback
    _, outs_a, outs_b = record_passes(method)
    method.training_step(FakeContext(), data)  # no optimiser: the weights stay fixed
    assert len(outs_a) == 3
    for a, b in zip(outs_a, outs_b):
        assert torch.equal(a.logits, plain_a.logits) and torch.equal(b.logits, plain_b.logits)


def test_feedback_changes_later_passes() -> None:
    method = make(encoder_dropout=0.0, decoder_dropout=0.0, **{"lambda": 1.0})
    _, outs_a, _ = record_passes(method)
    method.training_step(FakeContext(), batch())
    assert not torch.equal(outs_a[0].logits, outs_a[1].logits)


def test_encodings_by_hand() -> None:
    # stage features [x5, u5, u6, u7, u8]; scale s reads stage 5 - s
    a = [torch.full((1, 1, 1, 1, 1), float(v)) for v in (10, 20, 30, 40, 50)]
    b = [torch.full((1, 1, 1, 1, 1), float(v)) for v in (1, 2, 3, 4, 5)]
    a[4] = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1, 1)
    b[4] = torch.tensor([0.5, 3.0]).view(1, 2, 1, 1, 1)
    none = torch.zeros(1, 2, 1, 1, 1)
    expected = {"a_minus_b": ([1.5, -4.0], 27.0), "b_minus_a": ([-1.5, 4.0], -27.0), "abs": ([1.5, 4.0], 27.0)}
    for encoding, (s1, s3) in expected.items():
        d = encode(a, b, none, none, encoding, 0.1, (1, 3))
        assert d[1] is None and d[3] is None and d[4] is None
        assert torch.allclose(d[0].flatten(), 0.1 * torch.tensor(s1))
        assert d[2].item() == pytest.approx(0.1 * s3)

    # entropy: p_bar = (p_A + p_B) / 2 per voxel of a 2x2x2 volume, H normalised by log 2
    p_a = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.8, 0.2], [0.0, 1.0]] * 2).T.reshape(1, 2, 2, 2, 2)
    p_b = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.6, 0.4], [1.0, 0.0]] * 2).T.reshape(1, 2, 2, 2, 2)
    h = [1.0, 0.0, -(0.7 * math.log2(0.7) + 0.3 * math.log2(0.3)), 1.0] * 2
    a = [torch.zeros(1, 16, 1, 1, 1), torch.zeros(1, 8, 1, 1, 1), torch.zeros(1, 4, 1, 1, 1),
         torch.zeros(1, 2, 1, 1, 1), torch.zeros(1, 3, 2, 2, 2)]
    d = encode(a, a, p_a.log(), p_b.log(), "entropy", 0.1, (1, 2))
    assert d[0].shape == (1, 3, 2, 2, 2) and d[1].shape == (1, 2, 1, 1, 1)
    for c in range(3):
        assert torch.allclose(d[0][0, c].flatten(), 0.1 * torch.tensor(h), atol=1e-6)
    assert torch.allclose(d[1], torch.full((1, 2, 1, 1, 1), 0.1 * sum(h) / 8))
    assert d[2] is None


def test_s5_discrepancy_is_zero_without_gating_and_gating_shields_decoder_a() -> None:
    torch.manual_seed(0)
    net = LeFeDNet(filters=4).train()
    x = torch.randn(2, 1, 32, 32, 16)
    a, b = net(x)
    for encoding in ("a_minus_b", "b_minus_a", "abs"):
        assert torch.count_nonzero(encode(a.stages, b.stages, a.logits, b.logits, encoding, 1.0, (5,))[4]) == 0
    assert torch.count_nonzero(encode(a.stages, b.stages, a.logits, b.logits, "entropy", 1.0, (5,))[4]) > 0

    a, b = net(x, gating=True)
    x5 = a.stages[0]
    assert torch.allclose(b.stages[0], x5 + x5 * torch.sigmoid(x5))
    b.logits.square().mean().backward()
    assert all(p.grad is None for p in net.decoder_a.parameters())
    assert all(p.grad is not None for p in net.encoder.parameters())


def test_loss_terms_follow_equations_1_to_4() -> None:
    data = batch((32, 32, 16))
    y = data.label
    for variant in ("paper", "official"):
        method = make(variant=variant, feedback=False, encoder_dropout=0.0, decoder_dropout=0.0)
        terms = FakeContext().run(method, data)
        a, b = method.net(data.image, gating=method.options.b_gating)
        side = method.net.side_heads([s[:2] for s in a.stages])
        assert terms["dice_a"].item() == pytest.approx(dice_loss(a.logits[:2].softmax(1)[:, 1], y).item(), rel=1e-5)
        assert terms["ds"].item() == pytest.approx(deep_supervision_loss(side, y).item(), rel=1e-5)
        if variant == "paper":
            assert terms["ce_b"].item() == pytest.approx(cross_entropy(b.logits[:2], y).item(), rel=1e-5)
            assert terms["mse"].item() == pytest.approx(softmax_mse(a.logits[2:], b.logits[2:]).item(), rel=1e-5)
        else:
            assert terms["dice_b"].item() == pytest.approx(dice_loss(b.logits[:2].softmax(1)[:, 1], y).item(), rel=1e-5)
            assert terms["mse"].item() == pytest.approx(softmax_mse(a.logits, b.logits).item(), rel=1e-5)


def test_deep_supervision_weights_sit_on_the_right_heads() -> None:
    heads = SideHeads(filters=4)
    assert [h[0].in_channels for h in heads.heads] == [64, 32, 16, 8, 4]  # x5, u5, u6, u7, u8
    stages = [torch.zeros(1, 4 * 2 ** (4 - i), *(n // 2 ** (4 - i) for n in (32, 32, 16))) for i in range(5)]
    assert all(o.shape == (1, 2, 32, 32, 16) for o in heads(stages))
    assert DS_WEIGHTS == (0.1, 0.2, 0.4, 0.6, 0.8)  # 0.8 on the full-resolution head (u8), 0.1 on x5

    y = (torch.rand(2, 8, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).long()
    perfect = torch.stack([torch.zeros_like(y, dtype=torch.float), 40.0 * (2 * y - 1)], 1)
    uniform = torch.zeros_like(perfect)
    wrong = dice_loss(torch.full(y.shape, 0.5), y).item()
    for i in range(5):
        side = [uniform if j == i else perfect for j in range(5)]
        assert deep_supervision_loss(side, y).item() == pytest.approx(DS_WEIGHTS[i] * wrong, abs=1e-6)


def test_predict_uses_decoder_a_without_feedback() -> None:
    x = torch.randn(1, 1, 32, 32, 16)
    method = make().eval()
    calls: list[str] = []
    method.net.decoder_b.register_forward_hook(lambda *_: calls.append("b"))
    method.net.side_heads.register_forward_hook(lambda *_: calls.append("side"))
    with torch.no_grad():
        assert torch.equal(method.predict(x), method.net.decoder_a(method.net.encoder(x)).logits)
        assert calls == []
        for variant in ("paper", "official"):
            method = make(variant=variant, predict_from="mean_logits").eval()
            a, b = method.net(x, gating=method.options.b_gating)
            assert torch.allclose(method.predict(x), (a.logits + b.logits) / 2)


def test_lambda_is_the_user_facing_option_name() -> None:
    _, options = load_config({"method": "lefed", **parse_sets(["lambda=1e-2"])})
    assert options.lambda_ == 0.01
