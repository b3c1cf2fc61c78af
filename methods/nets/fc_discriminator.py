"""SASSNet's discriminator (``FC3DDiscriminator`` of ``kleinzcy/SASSnet``, ``sassnet.md`` section 1).

It tells whether a signed-distance map, seen together with its image, comes from a labeled (class 1)
or an unlabeled (class 0) sample. With ``ndf = 64``, one map and one image channel it has 11,020,290
parameters; state-dict keys are the official ones.
"""

from __future__ import annotations

from torch import Tensor, nn


class FCDiscriminator3D(nn.Module):
    """``(shape_map (N, M, X, Y, Z), image (N, C, X, Y, Z)) -> logits (N, 2)``.

    conv0 on the map and conv1 on the image (kernel 4, stride 2, padding 1, to ``ndf`` channels) are added,
    then LeakyReLU(0.2) and Dropout3d(0.5); conv2, conv3, conv4 (to 2, 4, 8 ``ndf`` channels, same geometry)
    each with LeakyReLU(0.2), conv2 and conv3 also with Dropout3d(0.5); a global average pool and a linear
    layer to 2 classes. The official fixed AvgPool3d((7, 7, 5)) is the global average pool at 112x112x80
    input (ours: global at every size, so that 96^3 patches work too). Axes must be divisible by 16.
    """

    def __init__(self, map_channels: int = 1, image_channels: int = 1, ndf: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv0 = nn.Conv3d(map_channels, ndf, 4, stride=2, padding=1)
        self.conv1 = nn.Conv3d(image_channels, ndf, 4, stride=2, padding=1)
        self.conv2 = nn.Conv3d(ndf, ndf * 2, 4, stride=2, padding=1)
        self.conv3 = nn.Conv3d(ndf * 2, ndf * 4, 4, stride=2, padding=1)
        self.conv4 = nn.Conv3d(ndf * 4, ndf * 8, 4, stride=2, padding=1)
        self.classifier = nn.Linear(ndf * 8, 2)
        self.act = nn.LeakyReLU(0.2)
        self.dropout = nn.Dropout3d(dropout)
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, shape_map: Tensor, image: Tensor) -> Tensor:
        x = self.dropout(self.act(self.conv0(shape_map) + self.conv1(image)))
        x = self.dropout(self.act(self.conv2(x)))
        x = self.dropout(self.act(self.conv3(x)))
        x = self.act(self.conv4(x))
        return self.classifier(self.pool(x).flatten(1))
