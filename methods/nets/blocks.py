"""Building blocks of the UA-MT-lineage V-Net (``vnet.md`` section 1).

All blocks act on tensors of shape (N, C, X, Y, Z).
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["batch", "instance", "group", "none"]
UpMode = Literal["transposed", "trilinear", "nearest"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """Normalisation after every convolution: BatchNorm (affine), InstanceNorm (no affine), GroupNorm(16)."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(16, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; expected batch, instance, group or none")


class ConvBlock(nn.Sequential):
    """``n`` x [Conv3d(k=3, p=1) -> Norm -> ReLU]; the first conv maps ``c_in`` -> ``c_out``."""

    def __init__(self, n: int, c_in: int, c_out: int, norm: Norm = "batch") -> None:
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv3d(c_in if i == 0 else c_out, c_out, 3, padding=1), norm_layer(norm, c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class Down(nn.Sequential):
    """Conv3d(k=2, s=2) -> Norm -> ReLU: halves every spatial axis."""

    def __init__(self, c_in: int, c_out: int, norm: Norm = "batch") -> None:
        super().__init__(nn.Conv3d(c_in, c_out, 2, stride=2), norm_layer(norm, c_out), nn.ReLU(inplace=True))


class Up(nn.Sequential):
    """Doubles every spatial axis.

    ``transposed``: ConvTranspose3d(k=2, s=2); ``trilinear`` (align_corners=True) and ``nearest``:
    Upsample(x2) followed by Conv3d(k=3, p=1). Each is followed by Norm -> ReLU.
    """

    def __init__(self, c_in: int, c_out: int, mode: UpMode = "transposed", norm: Norm = "batch") -> None:
        if mode == "transposed":
            layers: list[nn.Module] = [nn.ConvTranspose3d(c_in, c_out, 2, stride=2)]
        elif mode in ("trilinear", "nearest"):
            upsample = nn.Upsample(scale_factor=2, mode=mode, align_corners=True if mode == "trilinear" else None)
            layers = [upsample, nn.Conv3d(c_in, c_out, 3, padding=1)]
        else:
            raise ValueError(f"unknown up-sampling mode {mode!r}; expected transposed, trilinear or nearest")
        super().__init__(*layers, norm_layer(norm, c_out), nn.ReLU(inplace=True))
