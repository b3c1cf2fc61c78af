"""ASE-Net: adversarial self-ensembling with dynamic convolution (``asenet.md``).

Lei et al., IEEE TMI 2022; official code ``SUST-reynole/ASE-Net`` at b32112c, which does not run as
committed (``asenet.md`` section 1). ``variant: paper`` (default) is a working ASE-Net true to the three
components the abstract names: a mean teacher, the DyBAC segmenter (:class:`~methods.nets.dynamic.DynamicVNet`,
2-class softmax head) and adversarial consistency with two discriminators. Per iteration, with
``xi = clamp(N(0, 0.1^2), -0.2, 0.2)`` drawn once for the unlabeled rows and ``p`` the foreground
probability:

1. Discriminators (student in eval mode and teacher in train mode, both without gradient): D_img
   (image level) learns labeled (class 1) vs unlabeled (class 0) student predictions with
   cross-entropy; D_pix (pixel level) learns teacher-on-clean (1) vs student-on-perturbed (0) with a
   voxel-mean BCE; each loss is the mean of its two halves, one Adam step per discriminator.
2. Student (train mode; discriminators in eval mode and frozen): ``[o_L, a] = S(x)`` in one forward,
   ``b = S(x_U + xi)``, ``c = T(x_U + xi)`` without gradient;
   ``L = (CE + Dice)/2 + lambda(t) (L_adv + L_pcons)`` with ``L_adv = (CE(D_img(p(a)), 1) +
   BCE(D_pix(p(b)), 1)) / 2``, ``L_pcons`` the mean of ``[(s_a - s_c)^2 + (s_b - s_c)^2 + (s_a - s_b)^2] / 3``
   over the softmaxes ``s`` of the unlabeled rows, ``lambda(t) = lambda_max r(floor(t / 150), 40)``.
3. EMA update of the teacher (decay 0.99, ``methods.ema``).

Recipe (:meth:`ASENet.run_defaults`): 6,000 iterations; student Adam(1e-3, betas (0.9, 0.99), no weight
decay) x0.1 after 5,000 updates (what the repository's SGD-style step rule does to an Adam at 1e-3);
discriminators Adam(``d_lr`` 1e-3, same betas), constant; batches of 2 L + 2 U.

``variant: official`` reproduces the repository's training loop with its crashes fixed: plain V-Net
(``backbone: vnet``), 1-channel sigmoid head (``head: sigmoid``, BCE instead of CE), batches of 1 L + 1 U,
the second discriminator image-level (``consistency_discriminator: image``, ``Discriminator_3D`` standing
in for the missing ``FC3DDiscriminator``), the Dice term taken from the no-gradient eval-mode prediction
of step 1 (``dice_grad: false``: only BCE trains the labeled rows), and the three-way consistency kept on
the 1-channel softmax, where it is identically 0.

Choices of this suite (ours), in both variants unless a variant sets them:

- the 2-class head; training the DyBAC network (the repository only tests it); sSE + kernel attention as
  the "bidirectional attention"; ``Discriminator_3D`` as D_img; D_pix and its architecture
  (:mod:`methods.nets.asenet_discriminators`); which game each discriminator plays; the Dice term with
  gradient; 2 + 2 batches; the student at test time (``predict_with: teacher`` for the teacher).
- The teacher starts as a copy of the student (the repository initialises it separately; its first EMA
  update, alpha = 0, copies the student anyway, so only the step-1 teacher map of iteration 0 differs).
- ``dybac_variant: v2`` builds ``vnet_dy_v2.py`` (plain second convolution in each multi-conv block).
- sSE bottlenecks have ``max(1, C // 16)`` channels (the repository's 0 below 16 channels cannot run;
  only networks with fewer than 16 filters differ).

Repository bugs fixed without an option: the in-place LeakyReLU after each discriminator DyBAC block (an
identity on ReLU outputs that breaks backward) is dropped; the ignored ``--D_lr 1e-4`` is not used
(``d_lr`` is what executes); no test-set evaluation or test-Dice checkpoint naming during training.

Known gap: beyond 6,000 iterations (``budget: uniform``) the repository rule keeps dividing by 10 every
2,500 updates (1e-5 from update 7,501), while the harness's step schedule here divides every 5,000.

Logged terms: ``loss``, ``ce`` (BCE for a sigmoid head), ``dice``, ``pcons``, ``adv_img``, ``adv_pert``
(student's adversarial terms against D_img and the perturbation discriminator), ``d_img``, ``d_pert``
(the discriminators' losses) and ``weight`` (lambda(t)).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    Batch,
    DatasetInfo,
    Fraction,
    Method,
    NonNegative,
    OptimizerSpec,
    Options,
    Positive,
    Probability,
    StepContext,
)
from .ema import make_teacher, update_ema
from .helpers import add_clipped_noise, eval_mode, frozen
from .losses import consistency_weight, cross_entropy, dice_loss
from .nets.asenet_discriminators import ImageDiscriminator, PixelDiscriminator
from .nets.dynamic import DynamicVNet, DyVariant
from .nets.vnet import VNet
from .registry import register


@dataclass
class ASENetOptions(Options):
    """Options of ``asenet.md`` sections 2-4; ``consistency_discriminator`` is the kind of the
    teacher-vs-perturbed discriminator (``pixel``: D_pix; ``image``: a second ``Discriminator_3D``)."""

    variant: Literal["paper", "official"] = "paper"
    backbone: Literal["dybac", "vnet"] = "dybac"
    dybac_variant: DyVariant = "all"
    head: Literal["softmax", "sigmoid"] = "softmax"
    consistency_discriminator: Literal["pixel", "image"] = "pixel"
    dice_grad: bool = True
    lambda_max: NonNegative = 1.0
    rampup: NonNegative = 40.0
    ema_decay: Fraction = 0.99
    noise_std: NonNegative = 0.1
    noise_clip: NonNegative = 0.2
    d_lr: Positive = 1e-3
    betas: tuple[Probability, Probability] = (0.9, 0.99)
    predict_with: Literal["student", "teacher"] = "student"


VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"backbone": "dybac", "head": "softmax", "consistency_discriminator": "pixel", "dice_grad": True},
    "official": {"backbone": "vnet", "head": "sigmoid", "consistency_discriminator": "image", "dice_grad": False},
}


def foreground(logits: Tensor) -> Tensor:
    """``(N, K, X, Y, Z)`` logits -> ``(N, 1, X, Y, Z)`` foreground probability (sigmoid for K = 1, else
    the softmax of class 1)."""
    logits = logits.float()
    return torch.sigmoid(logits) if logits.shape[1] == 1 else logits.softmax(1)[:, 1:2]


def adversarial_loss(logits: Tensor, real: bool) -> Tensor:
    """A discriminator's loss against target ``real`` (1) or fake (0).

    Image level, ``(N, 2)`` logits: mean cross-entropy with class ``int(real)``; pixel level,
    ``(N, 1, X, Y, Z)`` logits: voxel-mean BCE with target ``float(real)``.
    """
    logits = logits.float()
    if logits.dim() == 2:
        return F.cross_entropy(logits, torch.full((logits.shape[0],), int(real), device=logits.device))
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def three_way_consistency(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Mean over all elements of ``[(s_a - s_c)^2 + (s_b - s_c)^2 + (s_a - s_b)^2] / 3``, ``s = softmax``
    over channels of ``(N, K, X, Y, Z)`` logits (identically 0 for K = 1, as in the repository)."""
    sa, sb, sc = (t.float().softmax(1) for t in (a, b, c))
    return (((sa - sc) ** 2 + (sb - sc) ** 2 + (sa - sb) ** 2) / 3).mean()


@register
class ASENet(Method):
    name = "asenet"
    paper = "Lei et al., Adversarial consistency learning and dynamic convolution network, IEEE TMI 2022"
    label = "ASE-Net"
    Options = ASENetOptions
    presets: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {"variant": VARIANTS}
    options: ASENetOptions

    def __init__(self, options: ASENetOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        if options.head == "sigmoid" and num_classes != 2:
            raise ValueError(f"head 'sigmoid' is binary; got num_classes={num_classes}")
        out = 1 if options.head == "sigmoid" else num_classes
        self.student: nn.Module = (
            DynamicVNet(in_channels, out, filters, dropout=True, variant=options.dybac_variant)
            if options.backbone == "dybac" else VNet(in_channels, out, filters, dropout=True)
        )
        self.teacher = make_teacher(self.student)
        self.d_img = ImageDiscriminator(1, in_channels)
        pixel = options.consistency_discriminator == "pixel"
        self.d_pert = PixelDiscriminator(1, in_channels) if pixel else ImageDiscriminator(1, in_channels)

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        assert isinstance(options, ASENetOptions)
        per_stream = 1 if options.variant == "official" else 2
        return {"iterations": 6000, "labeled_bs": per_stream, "unlabeled_bs": per_stream,
                "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
                "schedule": {"name": "step", "gamma": 0.1, "step_size": 5000}}

    def optimizers(self, main: OptimizerSpec) -> dict[str, OptimizerSpec]:
        """The run's optimiser (Adam by default) on the student; a constant Adam on each discriminator."""
        o = self.options

        def adam(module: nn.Module) -> OptimizerSpec:
            return OptimizerSpec(list(module.parameters()), "adam", o.d_lr, betas=o.betas, weight_decay=0.0,
                                 scheduled=False)

        return {"main": dataclasses.replace(main, params=list(self.student.parameters()), betas=o.betas),
                "d_img": adam(self.d_img), "d_pert": adam(self.d_pert)}

    def segmenter(self) -> nn.Module:
        return self.student

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n = self.options, batch.labeled_bs
        x, x_l, x_u = batch.image, batch.labeled, batch.unlabeled
        noisy = add_clipped_noise(x_u, o.noise_std, o.noise_clip)

        # Step 1: the discriminators learn from detached predictions.
        with torch.no_grad(), eval_mode(self.student):
            p_student = foreground(self.student(x))
            p_noisy = foreground(self.student(noisy))
            p_teacher = foreground(self.teacher(x_u))
        for name, d, real, fake in (("d_img", self.d_img, (p_student[:n], x_l), (p_student[n:], x_u)),
                                    ("d_pert", self.d_pert, (p_teacher, x_u), (p_noisy, x_u))):
            d.train()
            d_loss = 0.5 * (adversarial_loss(d(*real), True) + adversarial_loss(d(*fake), False))
            ctx.step(d_loss, optimizer=name, terms={name: d_loss})

        # Step 2: the student, through frozen eval-mode discriminators.
        self.d_img.eval()
        self.d_pert.eval()
        with frozen(self.d_img), frozen(self.d_pert):
            self._student_step(ctx, batch, noisy, p_student[:n])

    def _student_step(self, ctx: StepContext, batch: Batch, noisy: Tensor, p_labeled: Tensor) -> None:
        """Step 2 on the batch, its perturbed unlabeled rows and step 1's no-gradient labeled prediction."""
        o, n, x, x_u, y = self.options, batch.labeled_bs, batch.image, batch.unlabeled, batch.label
        out = self.student(x)
        out_noisy = self.student(noisy)
        with torch.no_grad():
            out_teacher = self.teacher(noisy)
        adv_img = adversarial_loss(self.d_img(foreground(out[n:]), x_u), True)
        adv_pert = adversarial_loss(self.d_pert(foreground(out_noisy), x_u), True)
        logits_l = out[:n].float()
        if logits_l.shape[1] == 1:
            ce = F.binary_cross_entropy_with_logits(logits_l[:, 0], y.float())
        else:
            ce = cross_entropy(logits_l, y)
        dice = dice_loss((foreground(logits_l) if o.dice_grad else p_labeled)[:, 0], y)
        pcons = three_way_consistency(out[n:], out_noisy, out_teacher)
        weight = consistency_weight(ctx.iteration, o.lambda_max, o.rampup)
        loss = 0.5 * (ce + dice) + weight * (0.5 * (adv_img + adv_pert) + pcons)
        ctx.step(loss, terms={"loss": loss, "ce": ce, "dice": dice, "pcons": pcons, "adv_img": adv_img,
                              "adv_pert": adv_pert})
        ctx.log({"weight": torch.tensor(weight)})

    def after_step(self, ctx: StepContext) -> None:
        update_ema(self.teacher, self.student, self.options.ema_decay, ctx.iteration)

    def predict(self, x: Tensor) -> Tensor:
        """Logits of the student (or the teacher with ``predict_with: teacher``), one pass per window."""
        return (self.teacher if self.options.predict_with == "teacher" else self.student)(x)
