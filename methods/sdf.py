"""Normalised signed distance maps of binary masks and the supervised losses of SASSNet and DTC.

``sassnet.md`` section 2 (``compute_sdf`` of ``kleinzcy/SASSnet`` and ``HiLab-git/DTC``): with F the
foreground of a crop, ``phi = d_out / max d_out - d_in / max d_in`` where ``d_in`` is the Euclidean
distance (voxel units) of a foreground voxel to the nearest background voxel and ``d_out`` that of a
background voxel to the nearest foreground voxel, both measured inside the crop; ``phi = 0`` on the inner
boundary of F (foreground voxels with a 6-neighbour in the background; the crop border is no surface).
So ``phi`` is in [-1, 1], negative inside. The official min-max normalisation subtracts the minima, which
are 0 whenever F and its complement are both non-empty, the only case it handles: a crop without
foreground gives 0 everywhere (official), an all-foreground crop gives -1 everywhere (ours; the official
code divides by zero).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from .losses import dice_loss

_CROSS = ndimage.generate_binary_structure(3, 1)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Normalised SDF (float64, same shape) of one binary (X, Y, Z) mask."""
    fg = np.asarray(mask, dtype=bool)
    if not fg.any():
        return np.zeros(fg.shape)
    if fg.all():
        return -np.ones(fg.shape)
    d_in = ndimage.distance_transform_edt(fg)
    d_out = ndimage.distance_transform_edt(~fg)
    sdf = d_out / d_out.max() - d_in / d_in.max()
    sdf[fg & ~ndimage.binary_erosion(fg, _CROSS, border_value=1)] = 0.0
    return sdf


def signed_distance_batch(labels: Tensor) -> Tensor:
    """SDF targets ``(N, X, Y, Z)`` float32 on the labels' device, computed per crop on the CPU."""
    masks = labels.detach().cpu().numpy()
    return torch.from_numpy(np.stack([signed_distance(m) for m in masks])).float().to(labels.device)


def shape_losses(sdf: Tensor, seg: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """The supervised terms of SASSNet and DTC on labeled rows: ``Dice(sigmoid(seg), label)`` (squared,
    batch-pooled) and ``MSE(sdf, phi(label))``; ``sdf``, ``seg``: ``(L, 1, X, Y, Z)``, ``label``: ``(L, X, Y, Z)``."""
    dice = dice_loss(torch.sigmoid(seg[:, 0]), label)
    return dice, torch.nn.functional.mse_loss(sdf[:, 0], signed_distance_batch(label))
