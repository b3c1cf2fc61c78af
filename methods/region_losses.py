"""Segmentation losses restricted to a voxel region, shared by FUSSNet and BCP (used by no other method).

``logits``: (N, K, X, Y, Z); ``target``: int64 (N, X, Y, Z); ``region``: optional {0, 1} float (N, X, Y, Z),
``None`` for every voxel. Dice and IoU follow ``grant-jpg/FUSSNet`` ``utils1/loss.py`` (``DiceLoss``,
``SoftIoULoss``), the same formula as ``DeepMed-Lab-ECNU/BCP`` ``mask_DiceLoss``: softmax probabilities,
one ratio per sample **and** class (background included), ``1 - mean``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

SMOOTH = 1e-5


def _sums(logits: Tensor, target: Tensor, region: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample and class: sum of ``p t``, of ``p`` and of ``t`` over the region, each (N, K)."""
    p = logits.softmax(1).flatten(2)
    t = F.one_hot(target, logits.shape[1]).movedim(-1, 1).flatten(2).to(p.dtype)
    if region is not None:
        m = region.flatten(1).unsqueeze(1).to(p.dtype)
        return (p * t * m).sum(2), (p * m).sum(2), (t * m).sum(2)
    return (p * t).sum(2), p.sum(2), t.sum(2)


def soft_dice_loss(logits: Tensor, target: Tensor, region: Tensor | None = None) -> Tensor:
    """``1 - mean_{n,k} (2 sum_R p t + 1e-5) / (sum_R (p + t) + 1e-5)``."""
    inter, p, t = _sums(logits, target, region)
    return 1 - ((2 * inter + SMOOTH) / (p + t + SMOOTH)).mean()


def soft_iou_loss(logits: Tensor, target: Tensor, region: Tensor | None = None) -> Tensor:
    """``1 - mean_{n,k} (sum_R p t + 1e-5) / (sum_R (p + t - p t) + 1e-5)``."""
    inter, p, t = _sums(logits, target, region)
    return 1 - ((inter + SMOOTH) / (p + t - inter + SMOOTH)).mean()


def cross_entropy_map(logits: Tensor, target: Tensor) -> Tensor:
    """Voxel-wise cross-entropy, (N, X, Y, Z)."""
    return F.cross_entropy(logits, target, reduction="none")


def focal_map(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Voxel-wise focal loss ``-(1 - p_t)^gamma log p_t`` without class weights, (N, X, Y, Z).

    As in ``FocalLoss`` of ``grant-jpg/FUSSNet`` ``utils1/losses.py``, ``p_t`` in the modulating factor is
    detached: only ``log p_t`` carries gradient.
    """
    log_pt = logits.log_softmax(1).gather(1, target.unsqueeze(1)).squeeze(1)
    return -((1 - log_pt.detach().exp()) ** gamma) * log_pt


def region_mean(values: Tensor, region: Tensor | None) -> Tensor:
    """``sum_R v / (|R| + 1e-16)`` (the official masked CE), or the plain mean when ``region`` is ``None``."""
    if region is None:
        return values.mean()
    return (values * region).sum() / (region.sum() + 1e-16)
