"""SS-Net: smoothness by virtual adversarial training and class separation by prototypes (``ssnet.md``;
``ycwu1997/SS-Net``, ``code/train_ss_3d.py``; the paper was not readable, the official code is primary).

Per iteration, with ``o, x9 = f(x)`` on the batch ``x = [x_L, x_U]`` (train mode, dropout on) and
``p = softmax(o)``:

- ``dice``: the unsquared batch-pooled Dice of ``p[labeled, fg]`` (eps 1e-8). The cross-entropy is
  computed and logged (``ce``) but, as in the official code, not trained on.
- Prototype memory: the labeled voxels predicted correctly (argmax, ties to background) **and as
  foreground** (``memory_classes: foreground``; ``all`` also keeps correct background voxels) are
  projected by the projection head in eval mode without gradient; per class with candidates, up to
  ``memory_size`` (32) of them replace that class's memory, ranked by ``sigmoid(selector_c)`` (selector in
  train mode, no gradient) when there are more; a class without candidates keeps its previous memory.
  The memory is a buffer of the method, so checkpoints resume it.
- ``cs_l`` / ``cs_u``: for the labeled rows grouped by label and the unlabeled rows grouped by their
  argmax pseudo-label, ``z = prediction(projection(x9))`` per voxel (train mode, one call per group) and
  ``L_cs = (1/K) sum_c mean_{i, j} w_i w_j (1 - cos(z_i, m_j))`` over the classes with a memory (see
  :func:`class_separation_loss`); 0 for a class with at most one voxel or memory element.
- ``lds``: VAT (``losses.VAT3d``) on all rows: target ``p_bar = softmax(f(x))`` without gradient in train
  mode (BatchNorm running statistics updated a second time); one power iteration from a random direction
  ``d ~ U(-1/2, 1/2)``, unit L2 norm per sample, gives ``r_adv = epsilon * g / ||g||`` with
  ``g = grad_d D(softmax f(x + xi d), p_bar)``; ``lds = D(softmax f(x + r_adv), p_bar)`` with ``D`` the
  unsquared Dice distance pooled over all rows, classes and voxels. Both perturbed passes use batch
  statistics without updating the running ones (dropout on); the direction is taken with
  ``torch.autograd.grad`` on ``d`` only, so no parameter gradient is left behind (the official code zeroes
  it). ``xi = epsilon = 10`` (``--magnitude 10``).
- ``loss = dice + lambda * (lds + separation_weight * (cs_l + cs_u))``, ``separation_weight = 0.1``,
  ``lambda = consistency * r(floor((t + 1) / 150), consistency_rampup)``: the official script increments its
  counter before computing the weight, so the ramp sees ``t + 1`` (``t = ctx.iteration``).

Recipe (:meth:`SSNet.run_defaults`): 15,000 iterations of 2 labeled + 2 unlabeled patches, SGD 0.01 with
the x0.1 / 2,500 step schedule (harness default). Prediction: the segmentation logits (heads unused).

Variants (``variant: paper`` fixes two bugs of the official contrastive code, ours):

- ``memory_weights``: ``normalised`` (paper) ``w_j = |M_c| sigmoid(sel_mem_c(m_j)) / sum_k sigmoid(...)``;
  ``ones`` (official: the code normalises along a singleton axis so every ``w_j`` is 1; the memory
  selectors are then not run, their output would cancel).
- ``memory_selection``: ``highest`` (paper, as the code's comment intends) or ``lowest`` (official: its
  ascending sort keeps the 32 lowest-ranked candidates).

Other choices (ours): the heads' input width follows ``filters``; per-class selectors for the configured
class count; without unlabeled rows ``cs_u`` is 0; the VAT direction is computed from the distance scaled by
its element count (same direction, no float16 underflow).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Batch, DatasetInfo, Method, NonNegative, Options, Positive, Range, StepContext
from .helpers import batch_statistics_only, eval_mode, full_precision
from .losses import consistency_weight, cross_entropy
from .nets.ssnet import FEATURE_DIM, SSNetVNet
from .registry import register
from .wu_losses import binary_dice_loss

Rows = Callable[[Tensor], Tensor]


@dataclass
class SSNetOptions(Options):
    """``xi``: power-iteration step; ``epsilon``: adversarial radius (the official ``--magnitude``);
    ``consistency``: the maximal weight of the unsupervised terms, ramped over ``consistency_rampup``
    pseudo-epochs of 150 iterations; ``separation_weight``: class separation relative to smoothness."""

    variant: Literal["paper", "official"] = "paper"
    memory_weights: Literal["normalised", "ones"] = "normalised"
    memory_selection: Literal["highest", "lowest"] = "highest"
    memory_classes: Literal["foreground", "all"] = "foreground"
    memory_size: Annotated[int, Range(2)] = 32
    xi: Positive = 10.0
    epsilon: NonNegative = 10.0
    consistency: NonNegative = 1.0
    consistency_rampup: NonNegative = 40.0
    separation_weight: NonNegative = 0.1
    dropout: bool = True


VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"memory_weights": "normalised", "memory_selection": "highest"},
    "official": {"memory_weights": "ones", "memory_selection": "lowest"},
}


def unit_normalize(d: Tensor) -> Tensor:
    """``d / (||d||_2 + 1e-8)`` per sample (over all axes but the first)."""
    norm = d.flatten(1).norm(dim=1).view(-1, *(1,) * (d.dim() - 1))
    return d / (norm + 1e-8)


def adversarial_perturbation(logits: Rows, x: Tensor, target: Tensor, xi: float, epsilon: float) -> Tensor:
    """VAT's ``r_adv`` (the shape of ``x``, constant): ``epsilon`` times the unit gradient of
    ``D(softmax logits(x + xi d), target)`` w.r.t. a random unit direction ``d``, per sample.

    ``logits``: ``(N, C, X, Y, Z) -> (N, K, X, Y, Z)``; ``target``: probabilities ``(N, K, X, Y, Z)``. The
    distance is differentiated times ``target.numel()``, which only changes rounding (the gradient is
    normalised) and keeps float16 backward passes from underflowing (ours).
    """
    d = unit_normalize(torch.rand_like(x) - 0.5).requires_grad_(True)
    distance = binary_dice_loss(logits(x + xi * d).float().softmax(1), target)
    (grad,) = torch.autograd.grad(distance * target.numel(), d)
    return epsilon * unit_normalize(grad)


def class_separation_loss(
    z: Tensor,
    labels: Tensor,
    memory: Sequence[Tensor],
    selectors: Sequence[Rows],
    memory_selectors: Sequence[Rows] | None,
    num_classes: int,
) -> Tensor:
    """``(1/K) sum_c mean_{i in S_c, j} w_i w_j (1 - cos(z_i, m_j))`` (``contrastive_class_to_class_learned_memory``).

    ``z``: features ``(M, D)``; ``labels``: ``(M,)`` classes; ``memory[c]``: ``(m_c, D)`` constants.
    ``w_i = |S_c| s_i / sum_k s_k`` with ``s = sigmoid(selectors[c](z.detach()))`` (the selector learns
    through the weights); ``w_j`` likewise from ``memory_selectors[c]`` on the L2-normalised memory, or 1
    when ``memory_selectors`` is None. Classes with ``|S_c| <= 1`` or ``m_c <= 1`` contribute 0.
    """
    loss = z.new_zeros(())
    for c in range(num_classes):
        z_c, m_c = z[labels == c], memory[c]
        if len(z_c) <= 1 or len(m_c) <= 1:
            continue
        m_c = F.normalize(m_c, dim=1)
        distance = 1 - F.normalize(z_c, dim=1) @ m_c.T
        w = torch.sigmoid(selectors[c](z_c.detach()))
        distance = distance * (len(w) * w / w.sum())
        if memory_selectors is not None:
            w_m = torch.sigmoid(memory_selectors[c](m_c)).T
            distance = distance * (w_m.shape[1] * w_m / w_m.sum())
        loss = loss + distance.mean()
    return loss / num_classes


@torch.no_grad()
def select_prototypes(candidates: Tensor, selector: Rows, size: int, highest: bool = True) -> Tensor:
    """At most ``size`` rows of ``candidates`` ``(n, D)``: all when ``n <= size``, else the ``size`` with the
    highest (or lowest) ``sigmoid(selector(row))``, in rank order (ties keep the candidates' order)."""
    if len(candidates) <= size:
        return candidates
    rank = torch.sigmoid(selector(candidates))[:, 0]
    return candidates[torch.argsort(rank, descending=highest, stable=True)[:size]]


def voxel_rows(x: Tensor) -> Tensor:
    """``(N, C, X, Y, Z) -> (N X Y Z, C)``."""
    return x.movedim(1, -1).reshape(-1, x.shape[1])


@register
class SSNet(Method):
    name = "ssnet"
    paper = ("Wu et al., Exploring smoothness and class-separation for semi-supervised medical image segmentation, "
             "MICCAI 2022")
    label = "SS-Net"
    Options = SSNetOptions
    presets: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {"variant": VARIANTS}
    options: SSNetOptions
    prototypes: Tensor
    prototype_counts: Tensor

    def __init__(self, options: SSNetOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = SSNetVNet(in_channels, num_classes, filters, dropout=0.5 if options.dropout else 0.0)
        self.register_buffer("prototypes", torch.zeros(num_classes, options.memory_size, FEATURE_DIM))
        self.register_buffer("prototype_counts", torch.zeros(num_classes, dtype=torch.long))

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 15000, "labeled_bs": 2, "unlabeled_bs": 2}

    def segmenter(self) -> nn.Module:
        return self.net

    def memory(self) -> list[Tensor]:
        """The prototype memory per class, ``(m_c, 32)`` each (empty until the class had candidates)."""
        return [self.prototypes[c, : int(n)] for c, n in enumerate(self.prototype_counts)]

    @torch.no_grad()
    def update_memory(self, x9: Tensor, logits: Tensor, label: Tensor) -> None:
        """Refill the memory from the labeled rows' ``x9`` ``(L, f, X, Y, Z)``, logits and labels ``(L, X, Y, Z)``."""
        o = self.options
        prediction = logits.argmax(1)
        keep = prediction == label
        if o.memory_classes == "foreground":
            keep &= prediction > 0
        if not keep.any():
            return
        with eval_mode(self.net.projection):
            projected = self.net.projection(x9.movedim(1, -1)[keep].float())
        classes = label[keep]
        for c in range(self.num_classes):
            candidates = projected[classes == c]
            if len(candidates):
                highest = o.memory_selection == "highest"
                chosen = select_prototypes(candidates, self.net.selectors[c], o.memory_size, highest)
                self.prototypes[c, : len(chosen)] = chosen
                self.prototype_counts[c] = len(chosen)

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n, net = self.options, batch.labeled_bs, self.net
        memory_selectors = net.memory_selectors if o.memory_weights == "normalised" else None

        def logits_of(x: Tensor) -> Tensor:
            return net(x).float()

        def separation(x9: Tensor, labels: Tensor) -> Tensor:
            z = net.prediction(net.projection(voxel_rows(x9))).float()
            with full_precision(z):
                return class_separation_loss(z, labels.reshape(-1), self.memory(), net.selectors, memory_selectors,
                                             self.num_classes)

        logits, x9 = net.features(batch.image)
        logits = logits.float()
        prob = logits.softmax(1)
        with full_precision(logits):
            self.update_memory(x9[:n].detach(), logits[:n].detach(), batch.label)
        cs_l = separation(x9[:n], batch.label)
        cs_u = separation(x9[n:], logits[n:].detach().argmax(1)) if len(x9) > n else logits.new_zeros(())
        with torch.no_grad():
            ce = cross_entropy(logits[:n], batch.label)
        dice = binary_dice_loss(prob[:n, 1], batch.label == 1)

        with torch.no_grad():
            target = logits_of(batch.image).softmax(1)
        with batch_statistics_only(net):
            r_adv = adversarial_perturbation(logits_of, batch.image, target, o.xi, o.epsilon)
            lds = binary_dice_loss(logits_of(batch.image + r_adv).softmax(1), target)

        weight = consistency_weight(ctx.iteration + 1, o.consistency, o.consistency_rampup)
        loss = dice + weight * (lds + o.separation_weight * (cs_l + cs_u))
        ctx.step(loss, terms={"loss": loss, "dice": dice, "lds": lds, "cs_l": cs_l, "cs_u": cs_u, "ce": ce})
