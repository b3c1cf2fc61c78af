"""UA-MT: uncertainty-aware mean teacher (Yu et al., MICCAI 2019; ``uamt.md``).

Follows ``yulequan/UA-MT`` ``code/train_LA_meanteacher_certainty_unlabel.py`` (the README's command):

- student and teacher: V-Net (2 classes, BatchNorm, Dropout3d 0.5 after x5 and before the head); the
  teacher is the EMA of the student, ``a = min(1 - 1/(t + 1), 0.99)`` after every step, parameters only,
  and stays in training mode (dropout on, batch statistics) for the whole run;
- supervised loss ``0.5 * (CE + Dice(softmax_fg))`` on the labeled rows;
- teacher target ``q = softmax(teacher(x_U + xi))``, ``xi = clamp(N(0, 0.1^2), -0.2, 0.2)``;
- uncertainty: the entropy (nats) of the mean softmax of T = 8 noisy MC-dropout teacher passes, run as
  T/2 forwards of the unlabeled rows repeated twice; mask ``u < (0.75 + 0.25 r(t, 6000)) ln 2`` with the
  raw iteration t and ``threshold_rampup`` = 6,000 (the official ``max_iterations``) under any budget;
- consistency: squared softmax difference summed over the certain voxels and both channels, divided by
  ``2 * (number of certain voxels) + 1e-16``; weight ``0.1 r(floor(t / 150), 40)``;
- SGD on the student only (harness defaults), 6,000 iterations, 2 labeled + 2 unlabeled.

Options beyond the official script:

- ``consistency_rows: all``: noise, uncertainty and consistency on all rows
  (``train_LA_meanteacher_certainty.py``, the only difference from the README script, UA-MT issue #13).
- ``consistency_type: kl``: element-wise ``KL(q || softmax(s))`` in place of the squared difference,
  masked and normalised the same way (in the official code, unused).
- ``uncertainty_threshold: none``: every voxel is certain (a plain mean teacher, the "threshold 100" of
  UA-MT issues #3, #18); the MC passes are then skipped.

Differences from the official code (ours): the uncertainty buffers follow the batch instead of a
hard-coded 2 x 112 x 112 x 80; the teacher starts as a copy of the student (the official teacher is a
second random initialisation, used only for the first iteration's target, whose weight is 0.00067).
Logged terms: ``loss``, ``ce``, ``dice``, ``consistency`` (unweighted), ``consistency_weight``,
``certain`` (fraction of voxels under the threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Batch, DatasetInfo, Fraction, Method, NonNegative, NonNegativeInt, Options, Range, StepContext
from .ema import make_teacher, update_ema
from .helpers import add_clipped_noise
from .losses import consistency_weight, cross_entropy, dice_loss, sigmoid_rampup
from .nets.vnet import VNet
from .registry import register


@dataclass
class UAMTOptions(Options):
    """``consistency``: lambda_max, ramped over ``consistency_rampup`` pseudo-epochs of 150 iterations;
    ``mc_passes``: T (even); ``threshold_rampup``: t_max of the threshold ramp, in raw iterations."""

    consistency: NonNegative = 0.1
    consistency_rampup: NonNegative = 40.0
    ema_decay: Fraction = 0.99
    noise_std: NonNegative = 0.1
    noise_clip: NonNegative = 0.2
    mc_passes: Annotated[int, Range(2)] = 8
    threshold_rampup: NonNegativeInt = 6000
    uncertainty_threshold: Literal["ramp", "none"] = "ramp"
    consistency_rows: Literal["unlabeled", "all"] = "unlabeled"
    consistency_type: Literal["mse", "kl"] = "mse"

    def __post_init__(self) -> None:
        if self.mc_passes % 2:
            raise ValueError(f"invalid value {self.mc_passes!r} for 'mc_passes'; expected an even number >= 2")


def entropy_threshold(iteration: int, rampup: int) -> float:
    """``H(t) = (0.75 + 0.25 r(t, t_max)) ln 2``: 0.521 at t = 0, ln 2 from t = t_max on."""
    return (0.75 + 0.25 * sigmoid_rampup(iteration, rampup)) * math.log(2)


def predictive_entropy(probs: Tensor) -> Tensor:
    """``-sum_c p_c log(p_c + 1e-6)`` in nats: ``(N, K, X, Y, Z)`` -> ``(N, 1, X, Y, Z)``."""
    return -(probs * torch.log(probs + 1e-6)).sum(1, keepdim=True)


def masked_consistency(student: Tensor, teacher: Tensor, mask: Tensor, kind: Literal["mse", "kl"] = "mse") -> Tensor:
    """``sum(m * d) / (2 sum(m) + 1e-16)`` with the element-wise distance ``d`` of the two softmaxes.

    ``student``, ``teacher``: logits ``(N, K, X, Y, Z)`` (no gradient goes to ``teacher``); ``mask``:
    ``(N, 1, X, Y, Z)`` in {0, 1}. ``mse``: ``(p_s - p_t)^2``; ``kl``: ``p_t (log p_t - log p_s)``.
    """
    target = teacher.detach().softmax(1)
    if kind == "mse":
        dist = (student.softmax(1) - target) ** 2
    else:
        dist = F.kl_div(student.log_softmax(1), target, reduction="none")
    return (mask * dist).sum() / (2 * mask.sum() + 1e-16)


@register
class UAMT(Method):
    name = "uamt"
    paper = ("Yu et al., Uncertainty-aware self-ensembling model for semi-supervised 3D left atrium segmentation, "
             "MICCAI 2019")
    label = "UA-MT"
    Options = UAMTOptions

    def __init__(self, options: UAMTOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.student = VNet(in_channels, num_classes, filters, dropout=True)
        self.teacher = make_teacher(self.student)

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 6000, "labeled_bs": 2, "unlabeled_bs": 2}

    def segmenter(self) -> nn.Module:
        return self.student

    def _noisy(self, x: Tensor) -> Tensor:
        return add_clipped_noise(x, self.options.noise_std, self.options.noise_clip)

    @torch.no_grad()
    def uncertainty(self, x: Tensor) -> Tensor:
        """Entropy ``(N, 1, X, Y, Z)`` of the mean teacher softmax over T noisy MC-dropout passes on ``x``,
        run as T/2 forwards of ``x`` repeated twice (the official batching, which sets the BN statistics)."""
        total = torch.zeros((), device=x.device)
        for _ in range(self.options.mc_passes // 2):
            probs = self.teacher(self._noisy(x.repeat(2, 1, 1, 1, 1))).float().softmax(1)
            total = total + probs.unflatten(0, (2, len(x))).sum(0)
        return predictive_entropy(total / self.options.mc_passes)

    @torch.no_grad()
    def targets(self, x: Tensor, iteration: int) -> tuple[Tensor, Tensor]:
        """Teacher logits on noisy ``x`` and the certainty mask ``(N, 1, X, Y, Z)`` at ``iteration``."""
        o = self.options
        target = self.teacher(self._noisy(x)).float()
        if o.uncertainty_threshold == "none":
            return target, torch.ones_like(target[:, :1])
        return target, (self.uncertainty(x) < entropy_threshold(iteration, o.threshold_rampup)).float()

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n_l = self.options, batch.labeled_bs
        first = 0 if o.consistency_rows == "all" else n_l
        if first == len(batch.image):
            raise ValueError("uamt with consistency_rows 'unlabeled' needs unlabeled rows (unlabeled_bs > 0)")
        logits = self.student(batch.image).float()
        target, mask = self.targets(batch.image[first:], ctx.iteration)
        ce = cross_entropy(logits[:n_l], batch.label)
        dice = dice_loss(logits[:n_l].softmax(1)[:, 1], batch.label)
        consistency = masked_consistency(logits[first:], target, mask, o.consistency_type)
        weight = consistency_weight(ctx.iteration, o.consistency, o.consistency_rampup)
        loss = 0.5 * (ce + dice) + weight * consistency
        ctx.step(loss, terms={"loss": loss, "ce": ce, "dice": dice, "consistency": consistency})
        ctx.log({"consistency_weight": torch.tensor(weight), "certain": mask.mean()})

    def after_step(self, ctx: StepContext) -> None:
        update_ema(self.teacher, self.student, self.options.ema_decay, ctx.iteration)
