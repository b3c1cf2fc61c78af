"""Losses shared by SS-Net and MC-Net+ (``ycwu1997/SS-Net``, ``ycwu1997/MC-Net``), used by no other method."""

from __future__ import annotations

from torch import Tensor


def binary_dice_loss(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pooled soft Dice with an **unsquared** denominator (the official ``Binary_dice_loss``).

    ``1 - (2 sum(a b) + eps) / (sum(a) + sum(b) + eps)`` with sums over every element. Supervised use:
    ``a`` foreground probabilities (N, X, Y, Z), ``b`` the {0, 1} labels. SS-Net's VAT distance: ``a`` and
    ``b`` class probabilities (N, K, X, Y, Z), where the loss equals one minus the mean per-voxel
    agreement ``sum_k a_k b_k``.
    """
    b = b.to(a.dtype)
    return 1 - (2 * (a * b).sum() + eps) / (a.sum() + b.sum() + eps)
