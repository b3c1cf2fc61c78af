"""ASE-Net's dynamic convolution (DyBAC) and the dynamic V-Net ``VNet_dy`` (``asenet.md`` section 2).

``SUST-reynole/ASE-Net`` ``ASE-NET/code/networks/vnet_dy.py``: a DyBAC block is spatial attention (sSE),
then a depthwise 3x3x3 convolution whose kernel is a per-sample softmax mixture of K kernels (kernel
attention), then a pointwise 1x1x1 convolution. For 1 input channel, 16 filters and BatchNorm,
``DynamicVNet`` has 1,357,664 parameters with 2 classes (1,357,647 with 1 output channel) and 4,068,311
with ``variant="v2"`` (4,068,294).

Differences from the repository (ours): the sSE bottleneck has ``max(1, C // 16)`` channels (the
repository's ``C // 16`` is 0 below 16 channels, which only the suite's small test networks reach).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import Norm, norm_layer
from .vnet import STAGE_DEPTHS, VNet

DyVariant = Literal["all", "v2"]


class SpatialSE(nn.Module):
    """``x * sigmoid(BN(Conv1x1(C/16 -> 1)(Conv1x1(C -> C/16)(x))))``: one map broadcast over channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 16, 1)
        self.excite = nn.Sequential(nn.Conv3d(channels, hidden, 1), nn.Conv3d(hidden, 1, 1), nn.BatchNorm3d(1))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.excite(x))


class KernelAttention(nn.Module):
    """``softmax(W2 relu(W1 GAP(x)) / tau)``: (N, C, X, Y, Z) -> (N, K) mixture weights of the K kernels.

    ``W1``: C -> ``int(0.25 C) + 1``, ``W2``: -> K, both 1x1x1 without bias; ``tau`` fixed (the repository's
    annealing helper is never called in 3D).
    """

    def __init__(self, channels: int, kernels: int = 4, temperature: float = 34.0) -> None:
        super().__init__()
        hidden = int(channels * 0.25) + 1
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Conv3d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv3d(hidden, kernels, 1, bias=False)
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.fc2(F.relu(self.fc1(self.pool(x)))).flatten(1) / self.temperature, dim=1)


class DynamicDepthwiseConv3d(nn.Module):
    """Depthwise 3x3x3 convolution (padding 1, no bias) with the per-sample kernel ``sum_k pi_k W_k``.

    ``W``: (K, C, 1, 3, 3, 3), initialised N(0, 1) as in the repository; ``pi`` from :class:`KernelAttention`.
    (N, C, X, Y, Z) -> (N, C, X/s, Y/s, Z/s) for stride s.
    """

    def __init__(self, channels: int, kernels: int = 4, temperature: float = 34.0, stride: int = 1) -> None:
        super().__init__()
        self.attention = KernelAttention(channels, kernels, temperature)
        self.weight = nn.Parameter(torch.randn(kernels, channels, 1, 3, 3, 3))
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        kernel = (self.attention(x) @ self.weight.flatten(1)).view(n * c, 1, 3, 3, 3)
        y = F.conv3d(x.reshape(1, n * c, *x.shape[2:]), kernel, stride=self.stride, padding=1, groups=n * c)
        return y.view(n, c, *y.shape[2:])

    def macs(self, inputs: tuple[Tensor, ...], output: Tensor) -> int:
        """Multiply-accumulates of the functional convolution (27 per output element), for MAC counters."""
        return 27 * output.numel()


class DyBAC(nn.Sequential):
    """sSE -> dynamic depthwise 3x3x3 conv (stride ``stride``) -> pointwise Conv1x1 ``c_in -> c_out`` (bias)."""

    def __init__(self, c_in: int, c_out: int, kernels: int = 4, temperature: float = 34.0, stride: int = 1) -> None:
        super().__init__(
            SpatialSE(c_in), DynamicDepthwiseConv3d(c_in, kernels, temperature, stride), nn.Conv3d(c_in, c_out, 1)
        )


class DyConvBlock(nn.Sequential):
    """``n`` x [DyBAC -> Norm -> ReLU]; with ``variant="v2"`` the second layer is a plain Conv3d(k=3, p=1)."""

    def __init__(
        self, n: int, c_in: int, c_out: int, norm: Norm = "batch", variant: DyVariant = "all",
        kernels: int = 4, temperature: float = 34.0,
    ) -> None:
        layers: list[nn.Module] = []
        for i in range(n):
            width = c_in if i == 0 else c_out
            conv = nn.Conv3d(width, c_out, 3, padding=1) if variant == "v2" and i == 1 else DyBAC(
                width, c_out, kernels, temperature)
            layers += [conv, norm_layer(norm, c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class DynamicVNet(VNet):
    """The V-Net of ``vnet.md`` with every conv block but ``block_one`` made of DyBAC layers (``VNet_dy``).

    ``(N, C_in, X, Y, Z) -> (N, K, X, Y, Z)`` logits; down/up-sampling convolutions, additive skips,
    dropout (0.5 after x5 and before the head when ``dropout``) and the head are the plain V-Net's.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        filters: int = 16,
        norm: Norm = "batch",
        dropout: bool = False,
        variant: DyVariant = "all",
        kernels: int = 4,
        temperature: float = 34.0,
    ) -> None:
        super().__init__(in_channels, num_classes, filters, norm, dropout)
        widths = [filters * 2**i for i in range(5)]
        for i in range(1, 5):
            self.encoder.blocks[i] = DyConvBlock(STAGE_DEPTHS[i], widths[i], widths[i], norm, variant, kernels,
                                                 temperature)
        for j, i in enumerate(range(3, -1, -1)):
            self.decoder.blocks[j] = DyConvBlock(STAGE_DEPTHS[i], widths[i], widths[i], norm, variant, kernels,
                                                 temperature)
