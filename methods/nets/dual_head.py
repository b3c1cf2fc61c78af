"""The SASSNet/DTC dual-head V-Net (``vnet_sdf.py`` of ``kleinzcy/SASSnet`` and ``HiLab-git/DTC``).

The V-Net of ``vnet.md`` whose last decoder feature (after dropout) feeds two 1x1x1 heads, 16 -> 1 each:
head 0 (official ``out_conv``) gives the signed-distance map through tanh, head 1 (``out_conv2``) the
segmentation logit. Two 16 -> 1 heads hold as many parameters as one 16 -> 2 head: 9,448,866 in all
for 1 input channel, 16 filters and BatchNorm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import Norm
from .vnet import Decoder, Encoder


class DualHeadVNet(nn.Module):
    """``(N, C, X, Y, Z) -> (sdf, seg)``: ``sdf = tanh(head 0)`` in (-1, 1) and the segmentation logit
    ``seg``, both ``(N, 1, X, Y, Z)``; axes divisible by 16. Dropout acts in training mode only."""

    def __init__(self, in_channels: int = 1, filters: int = 16, norm: Norm = "batch", dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, filters, norm, dropout)
        self.decoder = Decoder(1, filters, norm, "transposed", dropout, heads=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.decoder(self.encoder(x)).logits
        return torch.tanh(out[:, :1]), out[:, 1:]
