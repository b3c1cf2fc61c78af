"""CAML: network sizes, the cross-sample attention, the labeled memory, the omni-correlation, one step."""

from __future__ import annotations

import math

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_params
from methods import caml
from methods.base import RunInfo
from methods.losses import consistency_weight
from methods.nets.caml import CAMLNet, CrossSampleAttention


def make(filters: int = 4, **options) -> caml.CAML:
    _, opts = load_config({"method": "caml", "options": options})
    method = methods.get_method("caml")(opts, filters=filters)
    assert isinstance(method, caml.CAML)
    return method


def test_parameter_counts_match_the_official_network() -> None:
    net = CAMLNet()
    assert count_params(net) == 20_128_836
    assert [count_params(m) for m in (net.encoder_v, net.encoder_a, net.decoder_v, net.decoder_a)] == [
        7_376_896, 7_773_440, 2_071_970, 2_898_850]
    assert count_params(net.encoder_a.blocks[3].attention.intra) == 198_272
    assert count_params(net.encoder_v) + count_params(net.decoder_v) == 9_448_866  # branch V, the test network
    assert count_params(CAMLNet(cma="inter_only")) == 20_128_836 - 198_272
    config, options = load_config({"method": "caml"})
    result = complexity(config, options, (32, 32, 32))
    assert result["params"] == result["params_train"] == 20_128_836
    assert result["params_inference"] == 9_448_866
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs, config.schedule.name) == (15000, 2, 2,
                                                                                                  "constant")
    assert make(variant="official").options.labeled_proj_layout == "buggy"


def test_cross_sample_attention_runs_in_training_only_and_mixes_samples() -> None:
    torch.manual_seed(0)
    attention = CrossSampleAttention(8, dropout=0.0)
    x = torch.randn(3, 8, 2, 2, 2)
    assert torch.equal(attention.eval()(x), x)
    attention.train()
    y = attention(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    changed = x.clone()
    changed[2] += 1  # inter-sample attention: sample 2 reaches samples 0 and 1
    assert not torch.allclose(attention(changed)[0], y[0])
    assert torch.equal(CrossSampleAttention(8, "none").train()(x), x)


def test_slots_keep_a_subset_per_class_and_draws_follow_the_slot_counts() -> None:
    torch.manual_seed(0)
    z, labels = torch.randn(10, 3), torch.tensor([0] * 7 + [1] * 3)
    slot = caml.fill_slot(z, labels, 4, 2)
    assert slot.counts == [7, 3] and [len(r) for r in slot.rows] == [4, 3]
    assert all(any(torch.equal(r, z_i) for z_i in z[:7]) for r in slot.rows[0])
    assert caml.sample_memory([slot], 4, 2)[1] is None  # 3 < 4 rows of class 1
    a = caml.Slot([torch.zeros(4, 1), torch.zeros(0, 1)], [300, 0])
    b = caml.Slot([torch.ones(4, 1), torch.zeros(0, 1)], [100, 0])
    share = torch.stack([caml.sample_memory([a, b], 4, 2)[0].mean() for _ in range(2000)]).mean()
    assert share.item() == pytest.approx(0.25, abs=0.02)  # slot b holds a quarter of the union


def test_memory_rows_fixed_or_with_the_official_layout() -> None:
    torch.manual_seed(0)
    method = make(filters=16, memory_num=64).train()
    e_v, e_a = torch.randn(1, 16, 4, 4, 2), torch.randn(1, 16, 4, 4, 2)
    correct, label = torch.ones(1, 4, 4, 2, dtype=torch.bool), torch.zeros(1, 4, 4, 2, dtype=torch.long)
    method.update_memory(e_v, e_a, correct, label, [3])
    net = method.net.eval()
    with torch.no_grad():
        rows_v = net.projection_v(e_v.movedim(1, -1).reshape(-1, 16))
        fixed = (rows_v + net.projection_a(e_a.movedim(1, -1).reshape(-1, 16))) / 2
        buggy = (rows_v + net.projection_a(e_a.reshape(-1, 16))) / 2
    kept = method.slots[3].rows[0]
    assert method.slots[3].counts == [32, 0] and len(kept) == 32
    assert torch.allclose(kept.sort(0).values, fixed.sort(0).values, atol=1e-6)
    official = make(filters=16, memory_num=64, variant="official")
    official.load_state_dict(method.state_dict())
    official.update_memory(e_v, e_a, correct, label, [3])
    assert torch.allclose(official.slots[3].rows[0].sort(0).values, buggy.sort(0).values, atol=1e-6)


def test_correlations_by_hand() -> None:
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    memory = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    c = caml.correlations(u, memory, [torch.tensor([0, 2]), torch.tensor([1])], 0.1, False)
    logits = torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 2.0]]) / 0.1
    assert torch.allclose(c, logits.softmax(1))
    cosine = caml.correlations(u, memory, [torch.tensor([2])], 0.1, True)
    assert torch.allclose(cosine, torch.tensor([[1.0, 1.0]]) / 2)


def test_training_step_combines_the_terms_with_the_rampup_of_the_released_runs() -> None:
    torch.manual_seed(0)
    method = make(memory_num=8).train()
    assert method.stages(RunInfo(n_labeled=8, n_unlabeled=72, iterations=15000))
    assert method.rampup == 20.0 and make(consistency_rampup=40).rampup == 40.0
    image = torch.randn(4, 1, 32, 32, 16)
    label = (image[:2, 0] > 0.5).long()
    ctx = FakeContext(iteration=149)
    out = ctx.run(method, methods.Batch(image, label, torch.tensor([0, 5]), torch.tensor([0, 1])))
    assert set(out) == {"loss", "dice", "mc", "occ", "occ_rows", "memory"}
    lambda_c, lambda_o = consistency_weight(150, 1.0, 20.0), consistency_weight(150, 0.05, 20.0)
    assert lambda_c == pytest.approx(math.exp(-5 * (1 - 1 / 20) ** 2))
    expected = 0.5 * out["dice"].item() + lambda_c * out["mc"].item() + lambda_o * out["occ"].item()
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert out["occ_rows"].item() > 0 and out["occ"].item() > 0 and set(method.slots) == {0, 5}
    restored = make(memory_num=8)
    restored.load_state_dict(method.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(restored.slots[5].rows, method.slots[5].rows))
    assert restored.slots[5].counts == method.slots[5].counts


def test_prediction_from_branch_v_or_the_mean_probability() -> None:
    torch.manual_seed(0)
    method = make().eval()
    averaged = make(predict_from="mean").eval()
    averaged.load_state_dict(method.state_dict())
    x = torch.randn(1, 1, 32, 32, 16)
    with torch.no_grad():
        out = method.net(x)
        assert torch.equal(method.predict(x), out.logits_v)
        mean = (out.logits_v.softmax(1) + out.logits_a.softmax(1)) / 2
        assert torch.allclose(averaged.predict(x).softmax(1), mean, atol=1e-6)


def test_occ_is_zero_without_two_agreeing_voxels_of_a_class_or_without_memory() -> None:
    method = make().train()
    e = torch.randn(1, 4, 2, 1, 1)
    p_v = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).T.reshape(1, 2, 2, 1, 1)
    p_a = torch.tensor([[0.9, 0.1], [0.7, 0.3]]).T.reshape(1, 2, 2, 1, 1)  # the branches agree on voxel 0 only
    memory = [torch.randn(8, 32), torch.randn(8, 32)]
    for p in (p_a, p_v):  # one agreeing voxel; or two, one per class
        occ, rows = method.omni_correlation(e, e, p_v, p, memory)
        assert rows == 0 and occ.item() == 0
    assert method.omni_correlation(e, e, p_v, p_v, [None, None])[1] == 0
