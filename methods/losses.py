"""Losses and ramps shared by several methods (written once, used everywhere)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def dice_loss(prob: Tensor, target: Tensor, smooth: float = 1e-5) -> Tensor:
    """Batch-pooled soft Dice loss of the UA-MT lineage.

    ``1 - (2 sum(p g) + s) / (sum(p^2) + sum(g^2) + s)`` with sums over the batch and all voxels.
    ``prob``: foreground probabilities (N, X, Y, Z); ``target``: {0, 1} of the same shape.
    """
    target = target.float()
    intersection = (prob * target).sum()
    return 1 - (2 * intersection + smooth) / ((prob * prob).sum() + (target * target).sum() + smooth)


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean voxel-wise cross-entropy; ``logits`` (N, K, X, Y, Z), ``target`` int64 (N, X, Y, Z)."""
    return F.cross_entropy(logits, target)


def softmax_mse(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Mean over all elements of ``(softmax(a) - softmax(b))^2``; gradients reach both inputs."""
    return F.mse_loss(torch.softmax(logits_a, dim=1), torch.softmax(logits_b, dim=1))


def sigmoid_rampup(current: float, length: float) -> float:
    """Laine & Aila's ramp ``exp(-5 (1 - clip(c, 0, L)/L)^2)``; 1 when ``length`` is 0."""
    if length == 0:
        return 1.0
    phase = 1.0 - min(max(current, 0.0), length) / length
    return math.exp(-5.0 * phase * phase)


def consistency_weight(iteration: int, weight: float, rampup: float = 40.0, period: int = 150) -> float:
    """``weight * r(floor(iteration / period), rampup)``: the official ramp in pseudo-epochs of ``period``."""
    return weight * sigmoid_rampup(iteration // period, rampup)
