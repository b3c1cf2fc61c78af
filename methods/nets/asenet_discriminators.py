"""ASE-Net's two discriminators (``asenet.md`` section 2), each fed a probability map and the image.

Both fuse their inputs as ``SUST-reynole/ASE-Net`` ``networks/discriminator.py::Discriminator_3D`` does:
Conv3d(k=3, s=2, p=1) of the map plus the same of the image, LeakyReLU(0.2). Their down-sampling
blocks are DyBAC layers with stride 2 followed by BN and ReLU.

- :class:`ImageDiscriminator` is ``Discriminator_3D``: one 2-way logit per volume; 255,567 parameters
  for 1 map and 1 image channel.
- :class:`PixelDiscriminator` (ours; the repository has none): one logit per voxel; 73,511 parameters.

The repository applies an in-place LeakyReLU to each DyBAC block's ReLU output, which makes every
backward pass fail; on a ReLU output it is the identity, so it is left out here (no effect on values).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .dynamic import DyBAC


class DownBlock(nn.Sequential):
    """DyBAC with a stride-2 dynamic depthwise conv -> BN -> ReLU: halves every axis, ``c_in -> c_out``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(DyBAC(c_in, c_out, stride=2), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True))


class InputFusion(nn.Module):
    """``LeakyReLU_0.2(Conv(map) + Conv(image))``, both Conv3d(k=3, s=2, p=1) to ``width`` channels."""

    def __init__(self, map_channels: int, image_channels: int, width: int) -> None:
        super().__init__()
        self.map_conv = nn.Conv3d(map_channels, width, 3, stride=2, padding=1)
        self.image_conv = nn.Conv3d(image_channels, width, 3, stride=2, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, prob: Tensor, image: Tensor) -> Tensor:
        return self.act(self.map_conv(prob) + self.image_conv(image))


class ImageDiscriminator(nn.Module):
    """``(prob (N, M, X, Y, Z), image (N, C, X, Y, Z)) -> (N, 2)`` logits.

    Fusion -> Dropout3d(0.5) -> three down blocks ``w -> 2w -> 4w -> 8w`` (Dropout3d(0.5) after the first
    two) -> global average pool -> Linear(8w, 2).
    """

    def __init__(self, map_channels: int = 1, image_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.fusion = InputFusion(map_channels, image_channels, width)
        self.blocks = nn.ModuleList(DownBlock(width * 2**i, width * 2 ** (i + 1)) for i in range(3))
        self.dropout = nn.Dropout3d(0.5)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(width * 8, 2)

    def forward(self, prob: Tensor, image: Tensor) -> Tensor:
        x = self.dropout(self.fusion(prob, image))
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < 2:
                x = self.dropout(x)
        return self.classifier(self.pool(x).flatten(1))


class PixelDiscriminator(nn.Module):
    """``(prob (N, M, X, Y, Z), image (N, C, X, Y, Z)) -> (N, 1, X, Y, Z)`` logits.

    Fusion -> two down blocks ``w -> 2w -> 4w`` -> Conv1x1(4w -> 1) -> trilinear up-sampling
    (align_corners=False) to the input size.
    """

    def __init__(self, map_channels: int = 1, image_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.fusion = InputFusion(map_channels, image_channels, width)
        self.blocks = nn.Sequential(DownBlock(width, 2 * width), DownBlock(2 * width, 4 * width))
        self.head = nn.Conv3d(4 * width, 1, 1)

    def forward(self, prob: Tensor, image: Tensor) -> Tensor:
        logits = self.head(self.blocks(self.fusion(prob, image)))
        return F.interpolate(logits, size=prob.shape[2:], mode="trilinear", align_corners=False)
