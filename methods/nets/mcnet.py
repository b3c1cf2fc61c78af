"""MC-Net's multi-decoder V-Net (``mcnet_plus.md`` section 1): one encoder, one decoder per up-sampling mode.

With 1 input channel, 2 classes, 16 filters and BatchNorm, MC-Net+ (``MCNet3d_v2``: transposed, trilinear,
nearest) has exactly 15,246,566 parameters (encoder 7,376,896 + 2,071,970 + 2,898,850 + 2,898,850) and
MC-Net (``MCNet3d_v1``: transposed, trilinear) 12,347,716. State-dict keys: ``decoders.{k-1}`` is the
official ``decoder{k}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .blocks import UpMode
from .vnet import Decoder, Encoder

MCNET_PLUS_UPS: tuple[UpMode, ...] = ("transposed", "trilinear", "nearest")


class MultiDecoderVNet(nn.Module):
    """Shared encoder (Dropout3d ``dropout`` on x5, one mask per forward, so every decoder sees the same
    dropped x5) and decoders that differ only in their up-sampling, each with Dropout3d ``dropout`` before
    its head. ``forward``: ``(N, C, X, Y, Z)`` -> one ``(N, K, X, Y, Z)`` logit map per decoder.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        filters: int = 16,
        ups: Sequence[UpMode] = MCNET_PLUS_UPS,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, filters, "batch", dropout)
        self.decoders = nn.ModuleList(Decoder(num_classes, filters, "batch", up, dropout) for up in ups)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.encoder(x)
        return [decoder(features).logits for decoder in self.decoders]
