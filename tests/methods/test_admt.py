"""AD-MT: network sizes, the teachers' ensemble, the two augmentations, conflict combating, one step with its
EMA and alternation."""

from __future__ import annotations

import math

import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import complexity, count_params
from methods import admt
from methods.losses import consistency_weight


def make(filters: int = 4, **options) -> admt.ADMT:
    _, opts = load_config({"method": "admt", "options": options})
    method = methods.get_method("admt")(opts, filters=filters)
    assert isinstance(method, admt.ADMT)
    return method


def test_parameter_counts_and_recipe_match_the_official_code() -> None:
    method = make(16)
    assert count_params(method.student) == 9_448_866
    assert sum(p.numel() for p in method.teacher1.parameters()) == 9_448_866
    assert count_params(method.teacher1) == count_params(method.teacher2) == 0  # EMA only
    config, options = load_config({"method": "admt"})
    result = complexity(config, options, (32, 32, 32))
    assert result["params"] == result["params_train"] == result["params_inference"] == 9_448_866
    assert (config.iterations, config.labeled_bs, config.unlabeled_bs) == (15000, 2, 2)
    assert (config.schedule.name, config.schedule.power, config.optimizer.lr) == ("poly", 0.9, 0.01)
    assert options.longest_period == 19 and make(recipe="pancreas").options.longest_period == 14
    assert make(variant="official").options.student_view_alignment == "unaligned"
    assert make().options.student_view_alignment == "aligned"


def test_teachers_start_independent_or_as_copies() -> None:
    torch.manual_seed(0)
    independent, copied = make(), make(teacher_init="copy_student")
    first = next(independent.student.parameters())
    assert not torch.equal(first, next(independent.teacher1.parameters()))
    assert not torch.equal(next(independent.teacher1.parameters()), next(independent.teacher2.parameters()))
    assert torch.equal(next(copied.student.parameters()), next(copied.teacher2.parameters()))


def test_entropy_weighted_ensemble_by_hand() -> None:
    p1 = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1, 1)
    p2 = torch.tensor([0.4, 0.6]).view(1, 2, 1, 1, 1)
    h1 = -(0.9 * math.log2(0.9 + 1e-10) + 0.1 * math.log2(0.1 + 1e-10))
    h2 = -(0.4 * math.log2(0.4 + 1e-10) + 0.6 * math.log2(0.6 + 1e-10))
    w1 = math.exp(-h1) / (math.exp(-h1) + math.exp(-h2))
    expected = [w1 * 0.9 + (1 - w1) * 0.4, w1 * 0.1 + (1 - w1) * 0.6]
    assert admt.ensemble(p1, p2, "entropy_weighted").flatten().tolist() == pytest.approx(expected, abs=1e-6)
    assert admt.ensemble(p1, p2, "mean").flatten().tolist() == pytest.approx([0.65, 0.35])


def test_strong_view_keeps_the_patch_range_and_constant_patches() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8, 4) * 4 - 1
    assert torch.equal(admt.strong_view(x, 0.0, 0.0), x)
    colour = admt.strong_view(x, 1.0, 0.0)
    assert not torch.equal(colour, x)
    for i in range(3):  # brightness/contrast acts inside the patch's own [min, max]
        assert colour[i].min() >= x[i].min() - 1e-5 and colour[i].max() <= x[i].max() + 1e-5
    noise = admt.strong_view(x, 0.0, 1.0) - x
    assert (noise.abs() <= 2.0 + 1e-6).all() and noise.abs().max() > 0  # clipped at 2 sigma, sigma <= 1
    flat = torch.full((1, 1, 4, 4, 4), 0.5)
    assert torch.equal(admt.strong_view(flat, 1.0, 0.0), flat)


def test_cutmix_boxes_follow_the_official_geometry_and_mix_every_map_alike() -> None:
    shape = (112, 112, 80)
    for seed in range(30):
        torch.manual_seed(seed)
        mix = admt.cutmix_boxes(2, shape)
        torch.manual_seed(seed)
        lam = float(torch.distributions.Beta(4.0, 4.0).sample())
        sides = [int(s * math.sqrt(1 - lam)) for s in shape]
        assert sorted(mix.perm) == [0, 1]
        for box in mix.boxes:
            for sl, s, side in zip(box, shape, sides):
                assert 0 <= sl.start <= sl.stop <= s and sl.stop - sl.start <= 2 * (side // 2)
                assert sl.stop >= min(s // 8 + side // 2, s) and sl.start <= s - 1 - side // 2  # S // 8 <= c < S
    mix = admt.CutMix([(slice(0, 2), slice(0, 2), slice(0, 1))] * 2, [1, 0])
    image, label = torch.arange(2.0).view(2, 1, 1, 1, 1).expand(2, 1, 3, 3, 2), torch.tensor([0, 1]).view(2, 1, 1, 1)
    mixed, mixed_label = mix.apply(image), mix.apply(label.expand(2, 3, 3, 2))
    assert mixed[0, 0, :2, :2, 0].eq(1).all() and mixed[0, 0, 2].eq(0).all() and mixed[1, 0, :2, :2, 0].eq(0).all()
    assert torch.equal(mixed_label, mixed[:, 0].long())


def test_conflict_combating_takes_the_more_confident_student_only_where_teachers_disagree() -> None:
    label, conf = torch.tensor([0, 0, 0, 1]), torch.tensor([0.9, 0.6, 0.6, 0.7])
    label_s, conf_s = torch.tensor([1, 1, 1, 1]), torch.tensor([0.95, 0.95, 0.5, 0.99])
    conflict = torch.tensor([False, True, True, True])
    new_label, new_conf = admt.combat_conflicts(label, conf, label_s, conf_s, conflict)
    assert new_label.tolist() == [0, 1, 0, 1] and new_conf.tolist() == pytest.approx([0.9, 0.95, 0.6, 0.7])


def _step(method: admt.ADMT, iteration: int) -> tuple[dict[str, torch.Tensor], FakeContext]:
    torch.manual_seed(iteration)
    image = torch.randn(4, 1, 32, 32, 16)
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.01)
    ctx = FakeContext(iteration=iteration, optimizers={"main": opt})
    out = ctx.run(method, methods.Batch(image, (image[:2, 0] > 0.5).long()))
    return out, ctx


def test_training_step_combines_the_terms_and_sets_the_teacher_modes() -> None:
    method = make().train()
    method.on_stage_start(FakeContext())
    out, _ = _step(method, 150)
    assert set(out) == {"loss", "ce", "dice", "unsup", "unsup_weight", "confident", "conflict", "teacher"}
    weight = consistency_weight(150, 2.0)
    assert out["unsup_weight"].item() == pytest.approx(2.0 * math.exp(-5 * (1 - 1 / 40) ** 2))
    assert out["loss"].item() == pytest.approx((out["ce"] + out["dice"]).item() / 2 + weight * out["unsup"].item(),
                                               rel=1e-5)
    assert method.teacher1.training and not method.teacher2.training and out["teacher"].item() == 1
    empty = make(unsup_threshold=1.0).train()  # q = 1 needs a saturated softmax
    empty.on_stage_start(FakeContext())
    out, _ = _step(empty, 0)
    assert out["unsup"].item() == 0 and out["confident"].item() == 0 and math.isfinite(out["loss"].item())


def test_ema_warm_up_copies_the_student_into_the_current_teacher_and_teachers_alternate() -> None:
    method = make().train()
    method.on_stage_start(FakeContext())
    period = int(method.period)
    assert 1 <= period <= 19
    t2_before = [p.clone() for p in method.teacher2.parameters()]
    _, ctx = _step(method, 0)
    method.after_step(ctx)  # floor(0 / 2) < 40: a = 0
    for t, s in zip(method.teacher1.state_dict().values(), method.student.state_dict().values()):
        if t.is_floating_point():
            assert torch.equal(t, s)
    assert all(torch.equal(a, b) for a, b in zip(t2_before, method.teacher2.parameters()))
    for t in range(1, period):
        method.after_step(FakeContext(iteration=t))
    assert int(method.current) == 2 and int(method.counter) == 0
    out, _ = _step(method, period)
    assert out["teacher"].item() == 2 and method.teacher2.training and not method.teacher1.training
    state = method.state_dict()
    restored = make()
    restored.load_state_dict(state)
    assert (int(restored.current), int(restored.period)) == (2, int(method.period))
