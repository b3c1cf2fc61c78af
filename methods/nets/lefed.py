"""LeFeD's network (``lefed.md`` section 2): one V-Net encoder, decoder A (transposed-conv up-sampling),
decoder B (trilinear up-sampling) and deep-supervision side heads on A's stage features.

For 1 input channel, 2 classes, 16 filters and BatchNorm it has exactly 12,348,718 parameters (encoder
7,376,896; decoder A 2,071,970; decoder B 2,898,850; side heads 1,002).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .vnet import Decoder, DecoderOutput, Encoder


class SideHeads(nn.Module):
    """Deep supervision on decoder A's stage features ``[x5, u5, u6, u7, u8]``.

    Head ``i`` is a 1x1x1 conv ``16f / 2^i -> K`` followed by ``4 - i`` successive x2 trilinear
    (align_corners) up-samplings, as the official ``SideConv`` does, so every output is at full
    resolution ``(N, K, X, Y, Z)``. Widths scale with ``filters`` (the official class hard-codes 16).
    """

    def __init__(self, filters: int = 16, num_classes: int = 2) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(filters * 2 ** (4 - i), num_classes, 1),
                *(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=True) for _ in range(4 - i)),
            )
            for i in range(5)
        )

    def forward(self, stages: Sequence[Tensor]) -> list[Tensor]:
        return [head(stage) for head, stage in zip(self.heads, stages)]


class LeFeDNet(nn.Module):
    """Encoder, decoders A and B, side heads. ``forward`` runs the encoder and both decoders.

    Dropout (``Dropout3d``, active in training mode only): ``encoder_dropout`` on x5,
    ``decoder_dropout`` before each decoder's head.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        filters: int = 16,
        encoder_dropout: float = 0.0,
        decoder_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, filters, "batch", encoder_dropout)
        self.decoder_a = Decoder(num_classes, filters, "batch", "transposed", decoder_dropout)
        self.decoder_b = Decoder(num_classes, filters, "batch", "trilinear", decoder_dropout)
        self.side_heads = SideHeads(filters, num_classes)

    def forward(
        self, x: Tensor, additions: Sequence[Tensor | None] | None = None, gating: bool = False
    ) -> tuple[DecoderOutput, DecoderOutput]:
        """Decoder A's and B's outputs with their stage features ``[x5, u5, u6, u7, u8]``.

        ``x``: ``(N, C, X, Y, Z)``; ``additions``: optional encoder inputs for ``x1..x5`` (see
        :class:`Encoder`). ``gating``: B is gated by ``sigmoid`` of A's detached stage features (official
        code), so no loss on B reaches decoder A.
        """
        features = self.encoder(x, additions)
        a = self.decoder_a(features, return_stages=True)
        gates = [torch.sigmoid(s).detach() for s in a.stages] if gating else None
        b = self.decoder_b(features, return_stages=True, gates=gates)
        return a, b
