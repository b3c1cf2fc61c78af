"""AD-MT: alternate diverse teaching, one student and two alternately updated EMA teachers (``admt.md``;
Zhao et al., ECCV 2024).

Read at ``ZhenZHAO/AD-MT`` commit 03ef84c79ae4db884133293cba647c571dbce25b (the code last changed at
8cf8dec, "Fix bugs"); files and lines below are of that commit. The paper text beyond the abstract could not
be read, so the code is primary. Student and teachers are the suite V-Net (BN, Dropout3d 0.5 on x5 and
before the head; 9,448,866 parameters each, only the student's trained). One iteration, with the weak
unlabeled rows ``u_w`` (the harness's crops), ``t = ctx.iteration`` and the current teacher ``T_c``:

1. Teachers (no gradient; ``T_c`` in train mode, dropout on and its BN buffers updated, the other in eval
   mode) give ``P_1``, ``P_2`` on ``u_w``; entropies ``H_k = -sum_c P_k log2(P_k + 1e-10)``; ensemble
   ``P = w P_1 + (1 - w) P_2`` with ``w = e^-H_1 / (e^-H_1 + e^-H_2)``; pseudo-label ``y = argmax P``,
   confidence ``q = max P``; teacher conflict ``C = [argmax P_1 != argmax P_2]``
   (``code/train_post_3d_aut.py`` lines 205-240).
2. Distinct augmentation per teacher: while T1 is current the student sees the strong view of ``u_w``
   (:func:`strong_view`: brightness/contrast with probability 0.8, Gaussian noise with probability 0.2;
   ``code/dataloaders/dataset_3d.py`` lines 93-130, 235-280); while T2 is current it sees a 3-D CutMix of
   ``u_w`` (:func:`cutmix_boxes`, ``lambda ~ Beta(4, 4)``, box sides ``int(S sqrt(1 - lambda))``, centres in
   ``{S // 8, ..., S - 1}``, rows permuted; ``code/dataloaders/mixaugs.py`` lines 115-215) applied to the
   image and to ``(y, q, C)`` alike (lines 251-278).
3. One student forward of ``[x_L, u_w, u_s]``; the student's own ``(y_S, q_S)`` come from its ``u_w`` rows.
   Conflict combating: where ``C`` and ``y != y_S`` and ``q_S > q``, ``(y, q) <- (y_S, q_S)``
   (``code/train_utils.py`` lines 144-165).
4. ``sup = (CE + Dice) / 2`` on the labeled rows (Dice: mean over both classes of the batch-pooled squared
   Dice, eps 1e-5); ``unsup`` = cross-entropy of the student's ``u_s`` logits against ``y`` averaged over
   the voxels with ``q >= unsup_threshold`` (0.8); ``loss = sup + 2.0 r(floor(t / 150), 40) unsup``
   (lines 290-342).
5. EMA of ``T_c`` only (:meth:`ADMT.after_step`): ``a = 0`` while ``floor(t / 2) < 40``, then
   ``min(1 - 1 / (floor(t / 2) - 39), 0.99)``, on parameters and BN buffers (lines 40-53, 351-358); then the
   alternation counter advances and, after a period drawn from ``U{1, ..., period_max}``, the other teacher
   becomes current (``code/train_utils.py`` lines 12-60); ``period_max`` is 19 on LA and 14 on pancreas
   (``cfgs/config_3d_la_aut.yml``, ``cfgs/config_3d_pan_aut.yml``), ``recipe: la | pancreas``; ``auto``, the
   default, is resolved from the dataset's protocol family (:class:`~methods.base.DatasetInfo`): ``la`` on LA,
   ``pancreas`` on both pancreas protocols and on lung, ``la`` on other datasets (ours); the resolved recipe
   is what ``config.yaml`` records.

Recipe (:meth:`ADMT.run_defaults`): 15,000 iterations of 2 labeled + 2 unlabeled patches, SGD(0.01,
momentum 0.9, wd 1e-4) with the **poly** schedule ``0.01 (1 - t / 15000)^0.9`` (``poly: True`` in both
configs, lines 362-365; ``--set schedule.name=step`` gives the suite's x0.1 / 2,500 convention); the test
network is the student. ``period_max`` (an integer) replaces the recipe's, e.g. half an epoch.

Official code versus the paper variant (``variant: official`` selects the former):

- ``student_view_alignment: unaligned`` (official): in the CutMix state the teacher targets are mixed but
  ``(y_S, q_S)`` come from the unmixed ``u_w`` (lines 263-274 vs 286-287), so inside a mixed box step 3
  compares the teacher label of row ``pi(i)`` with the student label of row ``i``; ``aligned`` (paper)
  applies the same boxes and permutation to ``(y_S, q_S)``.

Shared by both variants, from the official code, with the alternatives as options:

- ``ensemble: mean``: the first release (a573afa, line 232) weighted both teachers by
  ``e^-(H_1 + H_2)``, which cancels in the renormalisation, i.e. ``(P_1 + P_2) / 2``; the released training
  logs predate 8cf8dec, so the published numbers used this (or an unreleased version).
- ``teacher_init: independent``: the teachers are two further random initialisations (lines 85-87), not
  copies of the student; ``copy_student`` (ours) copies it.
- ``teacher_mode: both_eval`` (ours) puts both teachers in eval mode.
- ``ema_buffers: false`` averages parameters only (as UA-MT and BCP).
- ``ccm_loss_form: split``: the ``alt_param_conflict_weight != 1`` path (lines 310-330),
  ``mean_{M \\ C} CE + conflict_weight mean_{M & C} CE``, each over its own voxels; ``pooled`` (the shipped
  ``1.0``) is one mean over all confident voxels.

Choices of this suite (ours):

- An empty confident set gives ``unsup = 0`` (PyTorch's mean over no voxel is NaN; the official code has
  no guard), as does an empty part of the ``split`` form (the official code guards only the second).
- ``num_batches_tracked`` is not averaged (the official ``.data`` assignment makes it a float; it is unused
  with BN momentum 0.1). The ensemble temperature (``alt_param_ensemble_temp`` 1.0, the identity) is left out.
- The strong view is computed on the device from the harness's crop (the official loader makes it from the
  same crop); a patch of constant intensity is left unchanged by the brightness/contrast step (the
  official min-max normalisation divides by zero).
- The harness's poly rate of update ``t`` is ``(1 - t / T)^0.9``; the official code sets the rate after
  each update, so its update ``t`` uses ``(1 - (t - 1) / T)^0.9`` (one iteration later).
- The batches come from the harness's two-stream sampler (the official primary stream is the unlabeled
  list); checkpoint selection is the harness's (the official code keeps the best student on the **test**
  set, lines 412-435, and applies LCC at test time: the harness's ``eval.lcc``).

Logged terms: ``loss``, ``ce``, ``dice``, ``unsup`` (unweighted), ``unsup_weight``, ``confident`` (fraction
of unlabeled voxels with ``q >= unsup_threshold``), ``conflict`` (fraction with ``C``), ``teacher`` (1 or 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .base import (
    Batch,
    DatasetInfo,
    Fraction,
    Method,
    NonNegative,
    NonNegativeInt,
    Options,
    Positive,
    PositiveInt,
    StepContext,
)
from .ema import average_buffers, make_teacher, update_ema
from .losses import consistency_weight, cross_entropy, dice_loss
from .nets.vnet import VNet
from .region_losses import cross_entropy_map, region_mean
from .registry import register

#: ``alt_param_updating_period_iters`` per recipe (``cfgs/config_3d_{la,pan}_aut.yml``).
PERIOD_MAX = {"la": 19, "pancreas": 14}
#: ``recipe: auto`` per protocol family (lung and other datasets: ours).
AUTO_RECIPE = {"la": "la", "pancreas": "pancreas", "lung": "pancreas", "other": "la"}
PRESETS = {"variant": {"paper": {"student_view_alignment": "aligned"},
                       "official": {"student_view_alignment": "unaligned"}}}


@dataclass
class ADMTOptions(Options):
    """``period_max``: the longest alternation period (``None``: the recipe's); ``consistency``: the maximal
    unsupervised weight, ramped over ``consistency_rampup`` pseudo-epochs of 150 iterations; ``ema_warmup``:
    the ``floor(t / 2)`` below which the current teacher copies the student."""

    variant: Literal["paper", "official"] = "paper"
    recipe: Literal["auto", "la", "pancreas"] = "auto"
    period_max: PositiveInt | None = None
    student_view_alignment: Literal["aligned", "unaligned"] = "aligned"
    ensemble: Literal["entropy_weighted", "mean"] = "entropy_weighted"
    ccm_loss_form: Literal["pooled", "split"] = "pooled"
    conflict_weight: NonNegative = 1.0
    unsup_threshold: Fraction = 0.8
    consistency: NonNegative = 2.0
    consistency_rampup: NonNegative = 40.0
    ema_decay: Fraction = 0.99
    ema_warmup: NonNegativeInt = 40
    ema_buffers: bool = True
    teacher_init: Literal["independent", "copy_student"] = "independent"
    teacher_mode: Literal["current_train", "both_eval"] = "current_train"
    cutmix_prob: Fraction = 1.0
    cutmix_beta: Positive = 4.0
    colour_prob: Fraction = 0.8
    noise_prob: Fraction = 0.2

    @property
    def longest_period(self) -> int:
        return PERIOD_MAX[self.recipe] if self.period_max is None else self.period_max


def strong_view(x: Tensor, colour_prob: float = 0.8, noise_prob: float = 0.2) -> Tensor:
    """AD-MT's strong view of ``x`` ``(N, 1, X, Y, Z)``, drawn per sample from torch's generator.

    Brightness/contrast (probability ``colour_prob``): with ``x_n`` the patch min-max normalised,
    ``x_n <- clip(a x_n + b mean(a x_n), 0, 1)``, ``a = 1 + U(-0.5, 0.5)``, ``b = U(-0.5, 0.5)``, mapped back
    to the patch range; then Gaussian noise (probability ``noise_prob``) ``clip(s N(0, 1), -2 s, 2 s)``,
    ``s ~ U(0.1, 1)``, per voxel.
    """
    shape = (len(x),) + (1,) * (x.dim() - 1)
    dims = tuple(range(1, x.dim()))

    def uniform(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(shape, device=x.device)

    contrast, brightness, sigma = uniform(0.5, 1.5), uniform(-0.5, 0.5), uniform(0.1, 1.0)
    colour = torch.rand(shape, device=x.device) < colour_prob
    noisy = torch.rand(shape, device=x.device) < noise_prob
    lo, hi = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    span = hi - lo
    scaled = (x - lo) / span.clamp_min(torch.finfo(x.dtype).tiny) * contrast
    adjusted = (scaled + brightness * scaled.mean(dims, keepdim=True)).clamp(0, 1) * span + lo
    x = torch.where(colour & (span > 0), adjusted, x)
    noise = torch.maximum(torch.minimum(sigma * torch.randn_like(x), 2 * sigma), -2 * sigma)
    return torch.where(noisy, x + noise, x)


@dataclass
class CutMix:
    """One CutMix draw over a batch: row ``i`` receives row ``perm[i]`` inside ``boxes[i]`` (slices of the
    last three axes)."""

    boxes: list[tuple[slice, slice, slice]]
    perm: list[int]

    def apply(self, x: Tensor) -> Tensor:
        """Mix ``x`` ``(N, ..., X, Y, Z)`` (images, labels, confidences or masks alike)."""
        out = x.clone()
        for i, (box, j) in enumerate(zip(self.boxes, self.perm)):
            out[(i, ..., *box)] = x[(j, ..., *box)]
        return out


def cutmix_boxes(n: int, shape: Sequence[int], beta: float = 4.0) -> CutMix:
    """``lambda ~ Beta(beta, beta)``; box sides ``int(S sqrt(1 - lambda))`` per axis; per row a centre
    ``c ~ U{S // 8, ..., S - 1}`` per axis and the box ``[clip(c - s // 2), clip(c + s // 2))`` within
    ``[0, S]``; a random permutation of the rows (torch's generator)."""
    lam = float(torch.distributions.Beta(beta, beta).sample())
    sides = [int(s * math.sqrt(1.0 - lam)) for s in shape]
    boxes = []
    for _ in range(n):
        centres = [int(torch.randint(s // 8, s, ())) for s in shape]
        boxes.append(tuple(slice(min(max(c - h // 2, 0), s), min(max(c + h // 2, 0), s))
                           for c, h, s in zip(centres, sides, shape)))
    return CutMix(boxes, torch.randperm(n).tolist())


def ensemble(p1: Tensor, p2: Tensor, mode: Literal["entropy_weighted", "mean"]) -> Tensor:
    """The teachers' ensemble of softmax maps ``(N, K, X, Y, Z)``: entropy-weighted (base-2 entropies,
    natural exponentials) or the plain mean."""
    if mode == "mean":
        return (p1 + p2) / 2
    w1, w2 = (torch.exp((p * torch.log2(p + 1e-10)).sum(1, keepdim=True)) for p in (p1, p2))
    w1 = w1 / (w1 + w2)
    return w1 * p1 + (1 - w1) * p2


def combat_conflicts(label: Tensor, conf: Tensor, label_s: Tensor, conf_s: Tensor,
                     conflict: Tensor) -> tuple[Tensor, Tensor]:
    """Take the student's label and confidence where the teachers disagree (``conflict``), the ensemble
    disagrees with the student and the student is more confident; all maps ``(N, X, Y, Z)``."""
    take = conflict & (label != label_s) & (conf_s > conf)
    return torch.where(take, label_s, label), torch.where(take, conf_s, conf)


def multiclass_dice_loss(prob: Tensor, target: Tensor) -> Tensor:
    """Mean over classes of the batch-pooled squared Dice (:func:`~methods.losses.dice_loss`) of ``prob``
    ``(N, K, X, Y, Z)`` against the one-hot ``target`` ``(N, X, Y, Z)``."""
    return sum(dice_loss(prob[:, c], target == c) for c in range(prob.shape[1])) / prob.shape[1]


@register
class ADMT(Method):
    name = "admt"
    paper = "Zhao et al., Alternate diverse teaching for semi-supervised medical image segmentation, ECCV 2024"
    label = "AD-MT"
    Options = ADMTOptions
    presets: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = PRESETS
    options: ADMTOptions
    current: Tensor
    counter: Tensor
    period: Tensor

    def __init__(self, options: ADMTOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        if options.recipe == "auto":
            raise ValueError("admt: recipe 'auto' is resolved from the dataset when the run is configured")
        self.student = VNet(in_channels, num_classes, filters, dropout=True)
        if options.teacher_init == "copy_student":
            self.teacher1, self.teacher2 = make_teacher(self.student), make_teacher(self.student)
        else:
            self.teacher1 = make_teacher(VNet(in_channels, num_classes, filters, dropout=True))
            self.teacher2 = make_teacher(VNet(in_channels, num_classes, filters, dropout=True))
        self.register_buffer("current", torch.ones((), dtype=torch.long))  # 1: T1, 2: T2
        self.register_buffer("counter", torch.zeros((), dtype=torch.long))
        self.register_buffer("period", torch.ones((), dtype=torch.long))

    @classmethod
    def auto_options(cls, dataset: DatasetInfo) -> dict[str, Any]:
        return {"recipe": AUTO_RECIPE[dataset.family]}

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 15000, "labeled_bs": 2, "unlabeled_bs": 2,
                "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
                "schedule": {"name": "poly", "power": 0.9}}

    def segmenter(self) -> nn.Module:
        return self.student

    def teachers(self) -> tuple[nn.Module, nn.Module]:
        """The current teacher first."""
        return (self.teacher1, self.teacher2) if int(self.current) == 1 else (self.teacher2, self.teacher1)

    def _draw_period(self) -> None:
        self.period.fill_(int(torch.randint(1, self.options.longest_period + 1, ())))

    def on_stage_start(self, ctx: StepContext) -> None:
        self.current.fill_(1)
        self.counter.zero_()
        self._draw_period()

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n = self.options, batch.labeled_bs
        u_w = batch.unlabeled
        if not len(u_w):
            raise ValueError("admt needs unlabeled rows (unlabeled_bs > 0)")
        current, other = self.teachers()
        current.train(o.teacher_mode == "current_train")
        other.eval()
        with torch.no_grad():
            p1, p2 = self.teacher1(u_w).float().softmax(1), self.teacher2(u_w).float().softmax(1)
        conf, label = ensemble(p1, p2, o.ensemble).max(1)
        conflict = p1.argmax(1) != p2.argmax(1)
        mix = None
        if int(self.current) == 1:
            u_s = strong_view(u_w, o.colour_prob, o.noise_prob)
        elif float(torch.rand(())) < o.cutmix_prob:
            mix = cutmix_boxes(len(u_w), u_w.shape[2:], o.cutmix_beta)
            u_s, label, conf, conflict = (mix.apply(v) for v in (u_w, label, conf, conflict))
        else:
            u_s = u_w
        logits = self.student(torch.cat([batch.labeled, u_w, u_s])).float()
        m = len(u_w)
        logits_l, logits_s = logits[:n], logits[n + m :]
        with torch.no_grad():
            conf_s, label_s = logits[n : n + m].softmax(1).max(1)
            if mix is not None and o.student_view_alignment == "aligned":
                conf_s, label_s = mix.apply(conf_s), mix.apply(label_s)
            label, conf = combat_conflicts(label, conf, label_s, conf_s, conflict)
            confident = (conf >= o.unsup_threshold).float()
        ce = cross_entropy(logits_l, batch.label)
        dice = multiclass_dice_loss(logits_l.softmax(1), batch.label)
        ce_u = cross_entropy_map(logits_s, label)
        if o.ccm_loss_form == "pooled":
            unsup = region_mean(ce_u, confident)
        else:
            unsup = (region_mean(ce_u, confident * ~conflict)
                     + o.conflict_weight * region_mean(ce_u, confident * conflict))
        weight = consistency_weight(ctx.iteration, o.consistency, o.consistency_rampup)
        loss = (ce + dice) / 2 + weight * unsup
        ctx.step(loss, terms={"loss": loss, "ce": ce, "dice": dice, "unsup": unsup})
        ctx.log({"unsup_weight": torch.tensor(weight), "confident": confident.mean(),
                 "conflict": conflict.float().mean(), "teacher": self.current.float()})

    def after_step(self, ctx: StepContext) -> None:
        """EMA of the current teacher, then the alternation."""
        o = self.options
        teacher = self.teachers()[0]
        alpha = update_ema(teacher, self.student, o.ema_decay, max(ctx.iteration // 2 - o.ema_warmup, 0))
        if o.ema_buffers:
            average_buffers(teacher, self.student, alpha)
        self.counter += 1
        if int(self.counter) >= int(self.period):
            self.current.fill_(3 - int(self.current))
            self.counter.zero_()
            self._draw_period()

    def predict(self, x: Tensor) -> Tensor:
        return self.student(x)
