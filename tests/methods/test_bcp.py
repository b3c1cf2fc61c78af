"""BCP: network sizes, the copy-paste mask and mixing, the mixed loss by hand, stages, a short training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fakes import FakeContext

import methods
from benchmarks.config import load_config
from benchmarks.report.complexity import count_params
from methods import bcp
from methods.base import Batch, RunInfo, TrainingData
from methods.volume_ops import largest_component


def make(filters: int = 4, **options):
    _, opts = load_config({"method": "bcp", "options": options})
    return methods.get_method("bcp")(opts, filters=filters)


def test_networks_have_the_contractual_parameter_counts() -> None:
    la, pancreas = make(16), make(16, recipe="pancreas")
    assert count_params(la.segmenter()) == 9_457_318
    assert count_params(pancreas.segmenter()) == 9_443_266
    assert not any(p.requires_grad for p in la.teacher.parameters())
    config, _ = load_config({"method": "bcp"})
    assert (config.labeled_bs, config.unlabeled_bs, config.iterations, config.optimizer.name) == (4, 4, 15000, "sgd")
    config, _ = load_config({"method": "bcp", "options": {"recipe": "pancreas"}})
    assert (config.optimizer.name, config.optimizer.lr, config.schedule.name) == ("adam", 1e-3, "constant")


def test_copy_paste_cube_geometry() -> None:
    starts = set()
    for seed in range(40):
        torch.manual_seed(seed)
        mask = bcp.cube_mask((112, 112, 80), 2 / 3)
        zero = (mask == 0).nonzero()
        lo, hi = zero.min(0).values, zero.max(0).values
        assert (hi - lo + 1).tolist() == [74, 74, 53] and len(zero) == 74 * 74 * 53
        assert mask.sum() == 112 * 112 * 80 - 74 * 74 * 53
        starts.add(tuple(lo.tolist()))
    xs, zs = {s[0] for s in starts}, {s[2] for s in starts}
    assert min(xs) >= 0 and max(xs) <= 37 and max(zs) <= 26  # {0..S-s-1}: never touches the far face
    torch.manual_seed(0)
    tiny = [tuple((bcp.cube_mask((5, 5, 3), 2 / 3) == 0).nonzero().min(0).values.tolist()) for _ in range(100)]
    assert {t[0] for t in tiny} == {0, 1} and {t[2] for t in tiny} == {0}  # cube 3 x 3 x 2


def test_mix_loss_by_hand() -> None:
    # two voxels: voxel 0 outside the cube (M = 1) has p_fg = 0.8, voxel 1 inside (M = 0) has p_fg = 0.3
    logits = torch.log(torch.tensor([[0.2, 0.7], [0.8, 0.3]])).reshape(1, 2, 2, 1, 1)
    mask = torch.tensor([1.0, 0.0]).reshape(2, 1, 1)
    inside, outside = torch.tensor([1, 1]).reshape(1, 2, 1, 1), torch.tensor([0, 0]).reshape(1, 2, 1, 1)
    s = 1e-5
    dice_m = 1 - 0.5 * (s / (0.2 + s) + (1.6 + s) / (1.8 + s))  # voxel 0 against target 1
    dice_c = 1 - 0.5 * ((1.4 + s) / (1.7 + s) + s / (0.3 + s))  # voxel 1 against target 0
    ce_m, ce_c = -math.log(0.8), -math.log(0.7)
    expected = 0.5 * (dice_m + 0.5 * dice_c + ce_m + 0.5 * ce_c)
    assert bcp.mix_loss(logits, inside, outside, mask, 1.0, 0.5).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("recipe", ["la", "pancreas"])
def test_bidirectional_mixing_of_images_and_labels(recipe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    method = make(recipe=recipe)
    shape = (32, 32, 16)
    image = torch.cat([torch.full((2, 1, *shape), v) for v in (1.0, 2.0, 3.0, 4.0)])  # la, lb, ua, ub (4+4)
    label = torch.cat([torch.ones((2, *shape), dtype=torch.long), torch.zeros((2, *shape), dtype=torch.long)])
    unlabeled_index = torch.tensor([0, 0, 1, 1])
    if recipe == "pancreas":  # unlabeled rows are the volumes' fixed centre crops, not the harness's crops
        image[4:] = 9.0
    data = TrainingData([], [np.full((40, 40, 20), 3.0, np.float32), np.full((40, 40, 20), 4.0, np.float32)])
    inputs, losses = [], []
    method.student.register_forward_pre_hook(lambda m, args: inputs.append(args[0].clone()))
    monkeypatch.setattr(method, "pseudo_label", lambda x: torch.full((len(x), *shape), int(x.mean()) + 2))  # 5 / 6
    monkeypatch.setattr(bcp, "mix_loss",
                        lambda logits, i, o, m, wi, wo: losses.append((i, o, m, wi, wo)) or logits.sum() * 0)
    method.training_step(FakeContext(stage="self_train", data=data),
                         Batch(image, label, unlabeled_index=unlabeled_index))

    cube = losses[0][2] == 0
    assert cube.sum() == 21 * 21 * 10
    if recipe == "la":  # X_l = la M + ua (1 - M), X_u = ub M + lb (1 - M)
        mixed = [(3.0, 1.0), (2.0, 4.0)]
        targets = [(1, 5, 1.0, 0.5), (6, 0, 0.5, 1.0)]  # (Y_a on M, Yhat_a in the cube), (Yhat_b, Y_b)
    else:  # X_u = ua M + lb (1 - M), X_l = la M + ub (1 - M)
        mixed = [(2.0, 3.0), (4.0, 1.0)]
        targets = [(5, 0, 0.5, 1.0), (1, 6, 1.0, 0.5)]  # (Yhat_a on M, Y_b in the cube), (Y_a, Yhat_b)
    for x, (in_cube, outside) in zip(inputs, mixed):
        assert torch.equal(x[:, 0], torch.where(cube, in_cube, outside).expand(2, *shape))
    for (inside, in_cube, _, w_in, w_out), (t_in, t_cube, e_in, e_out) in zip(losses, targets):
        assert (inside == t_in).all() and (in_cube == t_cube).all() and (w_in, w_out) == (e_in, e_out)


def test_pretraining_mixes_the_two_labeled_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    method = make()
    shape = (16, 16, 16)
    image = torch.cat([torch.full((2, 1, *shape), 1.0), torch.full((2, 1, *shape), 2.0)])
    label = torch.cat([torch.ones((2, *shape), dtype=torch.long), torch.zeros((2, *shape), dtype=torch.long)])
    seen = []
    method.student.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    monkeypatch.setattr(bcp, "soft_dice_loss", lambda logits, target: seen.append(target) or logits.sum() * 0)
    ctx = FakeContext(stage="pretrain")
    out = ctx.run(method, Batch(image, label))
    mixed, target = seen
    assert mixed.shape == (2, 1, *shape)
    assert torch.equal(target, (mixed[:, 0] == 1).long())  # Y_a where X_a was kept, Y_b in the cube
    assert (mixed == 2).sum() == 2 * 10 * 10 * 10
    assert set(out) == {"loss", "ce", "dice"} and ctx.steps == [("main", pytest.approx(out["loss"].item()))]


def test_pseudo_labels_keep_the_largest_component() -> None:
    mask = torch.zeros(1, 8, 8, 8, dtype=torch.bool)
    mask[0, :3, :3, :3] = True  # 27 voxels
    mask[0, 5:, 5:, 5:] = True  # 27 voxels too: tie -> the first label
    mask[0, 4, 4, 4] = True  # touches the second block diagonally only
    kept = largest_component(mask[0].numpy(), 3)
    assert kept.sum() == 28 and kept[4, 4, 4]  # 26-connectivity joins the corner voxel
    assert largest_component(mask[0].numpy(), 2).sum() == 27
    assert not largest_component(torch.zeros(4, 4, 4).numpy().astype(bool)).any()


def test_stage_plans_and_teacher_hand_over() -> None:
    la = make()
    pre, main = la.stages(RunInfo(8, 72, 15000))
    assert (pre.name, pre.iterations, pre.unlabeled_bs, pre.constant_lr, pre.select_best) == (
        "pretrain", 2000, 0, True, True)
    assert (main.name, main.iterations, main.reset_optimizers) == ("self_train", None, True)
    pancreas = make(recipe="pancreas")
    pre, main = pancreas.stages(RunInfo(12, 50, 15000))
    assert (pre.iterations, main.iterations, main.reset_optimizers, pre.constant_lr) == (1800, 5000, False, False)
    assert [s.iterations for s in pancreas.stages(RunInfo(6, 56, 15000))] == [1800, 5600]
    assert pancreas.stages(RunInfo(12, 50, 15000, "uniform"))[1].iterations is None
    la_style = make(recipe="pancreas", schedule="la_style")
    assert la_style.stages(RunInfo(12, 50, 15000)) == la.stages(RunInfo(12, 50, 15000))
    config, _ = load_config({"method": "bcp", "options": {"recipe": "pancreas", "schedule": "la_style"}})
    assert (config.optimizer.name, config.schedule.name) == ("sgd", "step")

    with torch.no_grad():
        for p in la.student.parameters():
            p.add_(1.0)
    la.on_stage_start(FakeContext(stage="self_train"))
    for (k, s), t in zip(la.student.state_dict().items(), la.teacher.state_dict().values()):
        assert torch.equal(s, t), k
    before = [p.clone() for p in la.teacher.parameters()]
    with torch.no_grad():
        for p in la.student.parameters():
            p.add_(1.0)
    la.after_step(FakeContext(stage="self_train"))
    for b, t, s in zip(before, la.teacher.parameters(), la.student.parameters()):
        assert torch.allclose(t, 0.99 * b + 0.01 * s)  # constant 0.99, no warm-up
