"""BCP: bidirectional copy-paste between labeled and unlabeled patches in a mean teacher (``bcp.md``;
``DeepMed-Lab-ECNU/BCP`` ``code/LA_BCP_train.py``, ``code/pancreas/train_pancreas.py``; the paper could not be
read, so the code defines the method and ``variant: paper`` and ``official`` coincide).

Copy-paste mask ``M`` (:func:`cube_mask`, one per iteration, shared by all pairs): ones except a zero cube of
``floor(mask_ratio * S)`` voxels per axis (LA 74 x 74 x 53 in 112 x 112 x 80, pancreas 64^3 in 96^3) whose
start is uniform in ``{0, ..., S - s - 1}`` per axis, derived from the patch (the official LA code hard-codes
112 / 112 / 80). Losses (:mod:`methods.region_losses`): ``Dice_R`` the per-sample, per-class soft Dice on a
region, ``CE_R = sum_R CE / (|R| + 1e-16)``, and ``mix(P, Y_M, Y_1-M; w_M, w_1-M) = (w_M Dice_M(P, Y_M) +
w_1-M Dice_1-M(P, Y_1-M) + w_M CE_M(P, Y_M) + w_1-M CE_1-M(P, Y_1-M)) / 2``.

Rows: labeled pairs ``a`` = rows ``[0, p)``, ``b`` = ``[p, 2p)`` and unlabeled pairs likewise, ``p`` = half the
labeled batch (2 with ``batch: 4+4``; 1 with ``2+2``, ours, the LeFeD comparison protocol).

1. ``pretrain`` (labeled rows only): ``X = X_a M + X_b (1 - M)``, ``Y = Y_a M + Y_b (1 - M)``, ``loss =
   (CE(f(X), Y) + Dice(f(X), Y)) / 2``. Selects its best checkpoint under ``selection: heldout`` (the
   official code selects on the test set every 200 iterations); both student and teacher of stage 2 start
   from it.
2. ``self_train``: the teacher (no gradient, **train mode**: dropout on, BatchNorm batch statistics and its
   own running buffers; ``teacher_eval: true`` for eval mode) predicts each unlabeled pair separately;
   pseudo-labels are ``LCC(1[softmax_fg >= 0.5])`` per sample (largest component, LA 26-, pancreas
   18-connectivity; empty stays empty). LA pairing: ``X_l = X^l_a M + X^u_a (1 - M)`` with ``loss_l =
   mix(f(X_l), Y_a, Yhat_a; 1, u_weight)`` and ``X_u = X^u_b M + X^l_b (1 - M)`` with ``loss_u =
   mix(f(X_u), Yhat_b, Y_b; u_weight, 1)`` (student forwards in that order, one per pair). Pancreas pairing
   (HEAD): ``X_u = X^u_a M + X^l_b (1 - M)``, ``loss_u = mix(f(X_u), Yhat_a, Y_b; u_weight, 1)``; ``X_l =
   X^l_a M + X^u_b (1 - M)``, ``loss_l = mix(f(X_l), Y_a, Yhat_b; 1, u_weight)``. ``loss = loss_l + loss_u``;
   EMA ``theta' <- 0.99 theta' + 0.01 theta`` on parameters, without warm-up. The official ramp weight and the
   dead ``--magnitude``, ``--u_alpha``, ``--loss_weight`` are left out.

Recipes (``recipe``; ``auto``, the default, is resolved from the dataset's protocol family
(:class:`~methods.base.DatasetInfo`): ``la`` on LA, ``pancreas`` on both pancreas protocols and on lung, ``la``
on other datasets; the resolved recipe is what ``config.yaml`` records; ``schedule`` for the pancreas path):

- ``la``: SS-Net's V-Net (:class:`~methods.nets.ssnet.SSNetVNet`: BN, Dropout3d 0.5 / 0.5, the unused
  projection / selector heads kept for the contractual 9,457,318 parameters; the unused max-pool output is
  dropped); 4 L + 4 U; SGD(0.01, momentum 0.9, wd 1e-4): ``pretrain_iterations`` (2,000) at constant lr, then
  a **fresh** SGD for the run's ``iterations`` (15,000) with the x0.1 / 2,500 step schedule restarting at 0;
  the harness's random crops with rotation/flip for every row.
- ``pancreas`` (lung too, ours): the CoraNet InstanceNorm V-Net with one branch
  (:class:`~methods.nets.branched_vnet.BranchedVNet`, 9,443,266, no dropout); unlabeled rows are each
  volume's fixed CoraNet centre crop (:func:`~methods.volume_ops.centre_crop`), labeled rows random crops;
  ``schedule: official``: one Adam(1e-3, betas (0.9, 0.999), no weight decay) at constant lr whose state
  carries into stage 2 (stage 2 reloads the selected checkpoint's Adam state), ``pretrain_epochs`` (60) x
  ``E_L`` then ``epochs`` (200) x ``min(E_L, floor(N_U / p))`` iterations with ``E_L = floor(r N_L / p)``
  (labeled list repeated ``r`` times per epoch: official 5 at 20 %, 10 at 10 %; ours ``r = ceil(60 / N_L)``,
  which gives both). ``schedule: la_style`` uses the LA optimiser and iteration budgets instead.

Suite choices (ours): ``--set iterations=N`` caps every stage (``run_defaults`` sets 15,000); under ``budget:
uniform`` (or ``epochs: null``) an epoch-based self-training stage runs the run's ``iterations``; the batches
come from the harness's two-stream sampler, not the official ordered (pancreas: fixed-order, one list
reversed) loaders; selection follows ``protocols.md`` section 10 instead of test-set Dice; one checkpoint
format for both stages; test-time LCC (on in BCP's published LA numbers) is the harness's ``eval.lcc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .base import (
    Batch,
    DatasetInfo,
    Fraction,
    Method,
    NonNegative,
    Options,
    PositiveInt,
    Range,
    RunInfo,
    Stage,
    StepContext,
)
from .ema import make_teacher, update_ema
from .losses import cross_entropy
from .nets.branched_vnet import BranchedVNet
from .nets.ssnet import SSNetVNet
from .region_losses import cross_entropy_map, region_mean, soft_dice_loss
from .registry import register
from .volume_ops import centre_crop, largest_components

#: Labeled samples per pancreas epoch that fix the repetition ``r = ceil(60 / N_L)`` (12 x 5, 6 x 10).
LABELED_PER_EPOCH = 60
#: Pseudo-label LCC neighbourhood per recipe: 26 (LA, ``skimage`` default) or 18 (pancreas ``connect_mode=2``).
CONNECTIVITY = {"la": 3, "pancreas": 2}
#: ``paper`` and ``official`` coincide (the code defines the method).
PRESETS = {"variant": {"paper": {}, "official": {}}}
#: ``recipe: auto`` per protocol family (lung and other datasets: ours).
AUTO_RECIPE = {"la": "la", "pancreas": "pancreas", "lung": "pancreas", "other": "la"}


@dataclass
class BCPOptions(Options):
    variant: Literal["paper", "official"] = "paper"
    recipe: Literal["auto", "la", "pancreas"] = "auto"
    schedule: Literal["official", "la_style"] = "official"
    batch: Literal["4+4", "2+2"] = "4+4"
    pretrain_iterations: PositiveInt = 2000
    pretrain_epochs: PositiveInt = 60
    epochs: PositiveInt | None = 200
    mask_ratio: Annotated[float, Range(0, 1, open_low=True, open_high=True)] = 2 / 3
    u_weight: NonNegative = 0.5
    ema_decay: Fraction = 0.99
    teacher_eval: bool = False

    @property
    def pair(self) -> int:
        """Samples per pair (a or b, labeled or unlabeled)."""
        return 2 if self.batch == "4+4" else 1

    @property
    def epoch_based(self) -> bool:
        return self.recipe == "pancreas" and self.schedule == "official"


def cube_mask(shape: Sequence[int], ratio: float, device: torch.device | str = "cpu") -> Tensor:
    """``M`` (X, Y, Z) float: ones except a zero cube of ``int(S * ratio)`` voxels per axis whose start is
    drawn uniformly from ``{0, ..., S - s - 1}`` (torch's global generator, one draw per axis)."""
    size = [int(s * ratio) for s in shape]
    start = [int(torch.randint(0, max(s - c, 1), ())) for s, c in zip(shape, size)]
    mask = torch.ones(tuple(shape), device=device)
    mask[tuple(slice(o, o + c) for o, c in zip(start, size))] = 0
    return mask


def mix_loss(logits: Tensor, inside: Tensor, outside: Tensor, mask: Tensor, w_inside: float,
             w_outside: float) -> Tensor:
    """``(w_M Dice_M + w_1-M Dice_1-M + w_M CE_M + w_1-M CE_1-M) / 2`` (``BCP_utils.mix_loss``).

    ``logits`` (N, K, X, Y, Z); ``inside`` / ``outside``: int64 targets (N, X, Y, Z) scored where ``mask``
    (X, Y, Z) is 1 / 0.
    """
    region = mask.expand_as(inside)
    dice = w_inside * soft_dice_loss(logits, inside, region) + w_outside * soft_dice_loss(logits, outside, 1 - region)
    ce = (w_inside * region_mean(cross_entropy_map(logits, inside), region)
          + w_outside * region_mean(cross_entropy_map(logits, outside), 1 - region))
    return (dice + ce) / 2


@register
class BCP(Method):
    name = "bcp"
    paper = "Bai et al., Bidirectional copy-paste for semi-supervised medical image segmentation, CVPR 2023"
    label = "BCP"
    Options = BCPOptions
    presets = PRESETS
    options: BCPOptions

    def __init__(self, options: BCPOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        if options.recipe == "auto":
            raise ValueError("bcp: recipe 'auto' is resolved from the dataset when the run is configured")
        if options.recipe == "la":
            self.student: nn.Module = SSNetVNet(in_channels, num_classes, filters, dropout=0.5)
        else:
            self.student = BranchedVNet(in_channels, num_classes, filters, branches=1, norm="instance")
        self.teacher = make_teacher(self.student)

    @classmethod
    def auto_options(cls, dataset: DatasetInfo) -> dict[str, Any]:
        return {"recipe": AUTO_RECIPE[dataset.family]}

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        assert isinstance(options, BCPOptions)
        rows = 2 * options.pair
        if options.epoch_based:
            recipe = {"optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}, "schedule": {"name": "constant"}}
        else:
            recipe = {"optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
                      "schedule": {"name": "step", "gamma": 0.1, "step_size": 2500}}
        return {"iterations": 15000, "labeled_bs": rows, "unlabeled_bs": rows, **recipe}

    def stages(self, run: RunInfo) -> tuple[Stage, ...]:
        o = self.options
        if not o.epoch_based:
            return (Stage("pretrain", o.pretrain_iterations, unlabeled_bs=0, constant_lr=True, select_best=True),
                    Stage("self_train", reset_optimizers=True))
        labeled = math.ceil(LABELED_PER_EPOCH / run.n_labeled) * run.n_labeled // o.pair
        epoch = min(labeled, run.n_unlabeled // o.pair)
        if epoch < 1:
            raise ValueError(f"bcp needs at least {o.pair} unlabeled cases, got {run.n_unlabeled}")
        main = None if o.epochs is None or run.budget == "uniform" else o.epochs * epoch
        return (Stage("pretrain", o.pretrain_epochs * labeled, unlabeled_bs=0, select_best=True),
                Stage("self_train", main))

    def segmenter(self) -> nn.Module:
        return self.student

    def _logits(self, net: nn.Module, x: Tensor) -> Tensor:
        out = net(x)
        return out[0] if isinstance(out, list) else out

    @torch.no_grad()
    def pseudo_label(self, x: Tensor) -> Tensor:
        """Teacher pseudo-labels (N, X, Y, Z) int64: largest component of ``softmax_fg >= 0.5`` per sample."""
        probs = self._logits(self.teacher, x).float().softmax(1)
        return largest_components(probs[:, 1] >= 0.5, CONNECTIVITY[self.options.recipe])

    def on_stage_start(self, ctx: StepContext) -> None:
        if ctx.stage == "self_train":
            self.teacher.load_state_dict(self.student.state_dict())

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        terms = self._pretrain(ctx, batch) if ctx.stage == "pretrain" else self._self_train(ctx, batch)
        ctx.step(terms["loss"], terms=terms)

    def _pretrain(self, ctx: StepContext, batch: Batch) -> dict[str, Tensor]:
        p = self.options.pair
        xa, xb = batch.labeled[:p], batch.labeled[p : 2 * p]
        ya, yb = batch.label[:p], batch.label[p : 2 * p]
        mask = cube_mask(xa.shape[2:], self.options.mask_ratio, ctx.device)
        image, label = xa * mask + xb * (1 - mask), (ya * mask + yb * (1 - mask)).long()
        logits = self._logits(self.student, image).float()
        ce, dice = cross_entropy(logits, label), soft_dice_loss(logits, label)
        return {"loss": (ce + dice) / 2, "ce": ce, "dice": dice}

    def _unlabeled(self, ctx: StepContext, batch: Batch) -> Tensor:
        """The unlabeled rows: the harness's crops (LA) or each volume's fixed centre crop (pancreas)."""
        if self.options.recipe == "la":
            return batch.unlabeled
        assert batch.unlabeled_index is not None
        patch = batch.image.shape[2:]
        crops = [centre_crop(ctx.data.unlabeled[i], patch) for i in batch.unlabeled_index.tolist()]
        return torch.from_numpy(np.stack(crops))[:, None].to(ctx.device)

    def _self_train(self, ctx: StepContext, batch: Batch) -> dict[str, Tensor]:
        o, p = self.options, self.options.pair
        xa, xb = batch.labeled[:p], batch.labeled[p : 2 * p]
        ya, yb = batch.label[:p], batch.label[p : 2 * p]
        unlabeled = self._unlabeled(ctx, batch)
        ua, ub = unlabeled[:p], unlabeled[p : 2 * p]
        self.teacher.train(not o.teacher_eval)
        pa, pb = self.pseudo_label(ua), self.pseudo_label(ub)
        mask = cube_mask(xa.shape[2:], o.mask_ratio, ctx.device)
        w = o.u_weight
        if o.recipe == "la":
            out_l = self._logits(self.student, xa * mask + ua * (1 - mask))
            out_u = self._logits(self.student, ub * mask + xb * (1 - mask))
            loss_l = mix_loss(out_l.float(), ya, pa, mask, 1.0, w)
            loss_u = mix_loss(out_u.float(), pb, yb, mask, w, 1.0)
        else:
            out_u = self._logits(self.student, ua * mask + xb * (1 - mask))
            out_l = self._logits(self.student, xa * mask + ub * (1 - mask))
            loss_u = mix_loss(out_u.float(), pa, yb, mask, w, 1.0)
            loss_l = mix_loss(out_l.float(), ya, pb, mask, 1.0, w)
        pseudo_fg = torch.cat([pa, pb]).float().mean()
        return {"loss": loss_l + loss_u, "loss_l": loss_l, "loss_u": loss_u, "pseudo_fg": pseudo_fg}

    def after_step(self, ctx: StepContext) -> None:
        if ctx.stage == "self_train":
            update_ema(self.teacher, self.student, self.options.ema_decay, step=None)

    def predict(self, x: Tensor) -> Tensor:
        return self._logits(self.student, x)
