"""The CoraNet-lineage V-Net (``vnet.md`` section 3; ``grant-jpg/FUSSNet`` ``vnet.py``, ``DeepMed-Lab-ECNU/BCP``
``code/pancreas/Vnet.py``): InstanceNorm without affine parameters, no dropout, and a decoder that stops at
``u8 + x1`` and feeds ``n`` full-resolution branches, each ConvBlock(1, f -> f) + Conv1x1x1(f -> K).

For 1 input channel, 2 classes and 16 filters: 4 branches (FUSSNet) 9,464,152 parameters; 1 branch
(BCP pancreas) 9,443,266, the InstanceNorm V-Net.
"""

from __future__ import annotations

from torch import Tensor, nn

from .blocks import ConvBlock, Norm, Up
from .vnet import STAGE_DEPTHS, Encoder


class BranchedVNet(nn.Module):
    """``(N, C_in, X, Y, Z)`` -> a list of ``branches`` logits ``(N, K, X, Y, Z)``; axes divisible by 16."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, filters: int = 16, branches: int = 1,
                 norm: Norm = "instance") -> None:
        super().__init__()
        widths = [filters * 2**i for i in range(5)]
        self.encoder = Encoder(in_channels, filters, norm)
        self.ups = nn.ModuleList(Up(widths[i], widths[i - 1], "transposed", norm) for i in range(4, 0, -1))
        # block_six .. block_eight; block_nine's place is taken by each branch's own ConvBlock
        self.blocks = nn.ModuleList(ConvBlock(STAGE_DEPTHS[i - 1], widths[i - 1], widths[i - 1], norm)
                                    for i in range(4, 1, -1))
        self.branches = nn.ModuleList(
            nn.Sequential(ConvBlock(1, filters, filters, norm), nn.Conv3d(filters, num_classes, 1))
            for _ in range(branches)
        )

    def trunk(self, x: Tensor) -> Tensor:
        """The shared feature ``u8 + x1``, ``(N, f, X, Y, Z)`` (FUSSNet's aleatoric head reads it)."""
        *skips, h = self.encoder(x)
        for i, up in enumerate(self.ups):
            h = up(h) + skips[3 - i]
            if i < len(self.blocks):
                h = self.blocks[i](h)
        return h

    def heads(self, features: Tensor) -> list[Tensor]:
        return [branch(features) for branch in self.branches]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.heads(self.trunk(x))
