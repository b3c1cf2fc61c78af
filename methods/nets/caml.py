"""CAML's dual network (``caml.md`` section 1; ``Herschel555/CAML`` ``code/networks/VNet.py::CAML3d_v1``).

Two sub-networks with separate encoders, trained jointly:

- branch V: the suite V-Net (BN, Dropout3d 0.5 on x5 and before the head, transposed-conv decoder);
- branch A: the same encoder with cross-sample attention (CMA) after its fourth conv block (the attended
  x4 is both the skip of decoder A and the input of the fourth down-sampling), and a trilinear decoder;
- voxel-wise projection heads ``g_V``, ``g_A`` (f -> 32 -> 32) and prediction heads ``h_V``, ``h_A``
  (32 -> 32 -> 32), each Linear -> BatchNorm1d -> ReLU -> Linear.

With 1 input channel, 2 classes, 16 filters: 20,128,836 parameters (encoder V 7,376,896, encoder A
7,773,440 = 7,376,896 + two attention layers of 198,272, decoder V 2,071,970, decoder A 2,898,850, heads
7,680); branch V alone is the 9,448,866-parameter V-Net. The attention width is x4's ``8 f`` channels
(128), 4 heads, feed-forward ``4 * 8 f``, dropout 0.5, post-norm, ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from .ssnet import FEATURE_DIM, head
from .vnet import Decoder, DecoderOutput, Encoder

CMA = Literal["intra_inter", "inter_only", "none"]


class CrossSampleAttention(nn.Module):
    """CMA on a feature map ``(B, C, X, Y, Z)``, in training mode only (the identity in eval mode).

    ``intra``: one transformer layer whose sequence is the X Y Z positions of one sample; ``inter``: one
    whose sequence is the B samples of the batch at one position (applied second). ``mode`` selects both
    (``intra_inter``, the official ``cma_type='v2+'``), ``inter_only`` or ``none``.
    """

    def __init__(self, channels: int, mode: CMA = "intra_inter", heads: int = 4, dropout: float = 0.5) -> None:
        super().__init__()

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(channels, heads, 4 * channels, dropout, batch_first=True)

        self.intra = layer() if mode == "intra_inter" else None
        self.inter = layer() if mode != "none" else None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.inter is None:
            return x
        b, c, *spatial = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, XYZ, C)
        if self.intra is not None:
            tokens = self.intra(tokens)
        tokens = self.inter(tokens.transpose(0, 1)).transpose(0, 1)  # sequence over the B samples
        return tokens.transpose(1, 2).reshape(b, c, *spatial)


class AttendedBlock(nn.Module):
    """An encoder conv block followed by :class:`CrossSampleAttention` on its output."""

    def __init__(self, block: nn.Module, attention: CrossSampleAttention) -> None:
        super().__init__()
        self.block = block
        self.attention = attention

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(self.block(x))


@dataclass
class CAMLOutput:
    """Per branch: logits ``(N, K, X, Y, Z)`` and the heads' input ``e`` ``(N, f, X, Y, Z)`` (after dropout)."""

    logits_v: Tensor
    logits_a: Tensor
    features_v: Tensor
    features_a: Tensor


class CAMLNet(nn.Module):
    """Branch V (``encoder_v``, ``decoder_v``), branch A (``encoder_a`` with CMA at x4, ``decoder_a``) and the
    voxel-wise heads ``projection_v/a``, ``prediction_v/a`` (rows ``(M, f)`` -> ``(M, 32)``).

    State-dict keys: ``encoder_v``/``encoder_a``/``decoder_v``/``decoder_a`` are the official
    ``encoder1``/``encoder2``/``decoder1``/``decoder2``; ``encoder_a.blocks.3.attention.intra``/``inter`` its
    ``intra_attention``/``inter_attention``; the heads its ``projection_head1/2`` and ``prediction_head1/2``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, filters: int = 16, dropout: float = 0.5,
                 cma: CMA = "intra_inter") -> None:
        super().__init__()
        self.encoder_v = Encoder(in_channels, filters, "batch", dropout)
        self.decoder_v = Decoder(num_classes, filters, "batch", "transposed", dropout)
        self.encoder_a = Encoder(in_channels, filters, "batch", dropout)
        self.encoder_a.blocks[3] = AttendedBlock(self.encoder_a.blocks[3], CrossSampleAttention(8 * filters, cma))
        self.decoder_a = Decoder(num_classes, filters, "batch", "trilinear", dropout)
        self.projection_v = head(filters, FEATURE_DIM, nn.ReLU(inplace=True))
        self.projection_a = head(filters, FEATURE_DIM, nn.ReLU(inplace=True))
        self.prediction_v = head(FEATURE_DIM, FEATURE_DIM, nn.ReLU(inplace=True))
        self.prediction_a = head(FEATURE_DIM, FEATURE_DIM, nn.ReLU(inplace=True))

    def branch_v(self, x: Tensor) -> DecoderOutput:
        return self.decoder_v(self.encoder_v(x))

    def branch_a(self, x: Tensor) -> DecoderOutput:
        return self.decoder_a(self.encoder_a(x))

    def forward(self, x: Tensor) -> CAMLOutput:
        v, a = self.branch_v(x), self.branch_a(x)
        return CAMLOutput(v.logits, a.logits, v.features, a.features)
