"""The non-residual V-Net of ``yulequan/UA-MT`` as composable encoder and decoder (``vnet.md``).

For 1 input channel, 2 classes, 16 filters and BatchNorm, ``VNet`` has exactly 9,448,866 parameters
(encoder 7,376,896; transposed-conv decoder 2,071,970).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import ConvBlock, Down, Norm, Up, UpMode

#: Convolutions per encoder stage x1..x5; the decoder mirrors stages 4..1.
STAGE_DEPTHS = (1, 2, 3, 3, 3)


class Encoder(nn.Module):
    """Five stages; returns ``[x1, ..., x5]`` with ``f, 2f, 4f, 8f, 16f`` channels at scales 1 .. 1/16.

    ``x1..x4`` are block outputs before down-sampling. ``additions`` (optional, five tensors or ``None``)
    are added to ``x1..x5`` right after each conv block, before down-sampling and before the bottleneck
    dropout (LeFeD's discrepancy feedback).
    """

    def __init__(self, in_channels: int = 1, filters: int = 16, norm: Norm = "batch", dropout: float = 0.0) -> None:
        super().__init__()
        widths = [filters * 2**i for i in range(5)]
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, (depth, width) in enumerate(zip(STAGE_DEPTHS, widths)):
            self.blocks.append(ConvBlock(depth, in_channels if i == 0 else width, width, norm))
            if i < 4:
                self.downs.append(Down(width, widths[i + 1], norm))
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, additions: Sequence[Tensor | None] | None = None) -> list[Tensor]:
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if additions is not None and additions[i] is not None:
                x = x + additions[i]
            if i < 4:
                features.append(x)
                x = self.downs[i](x)
        features.append(self.dropout(x))
        return features


@dataclass
class DecoderOutput:
    """Logits ``(N, K, X, Y, Z)``, the heads' input ``features`` ``(N, f, X, Y, Z)`` (the last block's output
    after dropout) and, when requested, the stage features ``[x5, u5, u6, u7, u8]``.

    ``stages[0]`` is the bottleneck as the decoder received it; ``stages[1:]`` are the up-block outputs
    before the skip addition, at 1/8, 1/4, 1/2 and full resolution.
    """

    logits: Tensor
    features: Tensor
    stages: list[Tensor] | None = None


class Decoder(nn.Module):
    """Mirror of the encoder with additive skips and a 1x1x1 head (``vnet.md`` section 2).

    ``heads`` > 1 gives several 1x1x1 heads whose outputs are concatenated along channels (the
    SASSNet/DTC dual head is ``heads=2, num_classes=1``). ``gates`` (optional, five tensors aligned with
    ``[x5, u5, u6, u7, u8]``) implement LeFeD's official B-gated-by-A path: the bottleneck becomes
    ``x5 + x5 * g0`` and skip ``x_k`` is replaced by ``x_k * g``.
    """

    def __init__(
        self,
        num_classes: int = 2,
        filters: int = 16,
        norm: Norm = "batch",
        up: UpMode = "transposed",
        dropout: float = 0.0,
        heads: int = 1,
    ) -> None:
        super().__init__()
        widths = [filters * 2**i for i in range(5)]
        self.ups = nn.ModuleList(Up(widths[i], widths[i - 1], up, norm) for i in range(4, 0, -1))
        self.blocks = nn.ModuleList(ConvBlock(STAGE_DEPTHS[i - 1], widths[i - 1], widths[i - 1], norm) for i in range(4, 0, -1))
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.heads = nn.ModuleList(nn.Conv3d(filters, num_classes, 1) for _ in range(heads))

    def forward(
        self, features: Sequence[Tensor], return_stages: bool = False, gates: Sequence[Tensor] | None = None
    ) -> DecoderOutput:
        *skips, x = features
        if gates is not None:
            x = x + x * gates[0]
        stages = [x]
        for i, (up, block) in enumerate(zip(self.ups, self.blocks)):
            u = up(x)
            stages.append(u)
            skip = skips[3 - i]
            if gates is not None:
                skip = skip * gates[i + 1]
            x = block(u + skip)
        x = self.dropout(x)
        logits = torch.cat([head(x) for head in self.heads], dim=1) if len(self.heads) > 1 else self.heads[0](x)
        return DecoderOutput(logits, x, stages if return_stages else None)


class VNet(nn.Module):
    """Encoder + one decoder: ``(N, C_in, X, Y, Z) -> (N, K, X, Y, Z)`` logits; axes divisible by 16."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        filters: int = 16,
        norm: Norm = "batch",
        dropout: bool = False,
        encoder_dropout: float = 0.5,
        decoder_dropout: float = 0.5,
        up: UpMode = "transposed",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, filters, norm, encoder_dropout if dropout else 0.0)
        self.decoder = Decoder(num_classes, filters, norm, up, decoder_dropout if dropout else 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x)).logits
