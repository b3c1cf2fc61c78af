"""SS-Net's network (``ssnet.md`` section 1): the V-Net plus voxel-wise heads for class separation.

With 1 input channel, 2 classes, 16 filters and BatchNorm it has exactly 9,457,318 parameters: V-Net
9,448,866, projection head 1,664, prediction head 2,176 and four selectors 4,612. The heads act on the
voxels of the 16-channel full-resolution feature ``x9`` reshaped to rows ``(#voxels, 16)``; their input
width follows ``filters`` (the official class hard-codes 16), their width is 32.

State-dict keys: ``selectors.{c}`` / ``memory_selectors.{c}`` are the official
``contrastive_class_selector_{c}`` / ``contrastive_class_selector_memory{c}``; ``projection`` and
``prediction`` the official ``projection_head`` and ``prediction_head``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .vnet import Decoder, Encoder

FEATURE_DIM = 32


def head(c_in: int, c_out: int, activation: nn.Module) -> nn.Sequential:
    """Linear(c_in -> 32) -> BatchNorm1d -> activation -> Linear(32 -> c_out), on rows ``(M, c_in)``."""
    return nn.Sequential(nn.Linear(c_in, FEATURE_DIM), nn.BatchNorm1d(FEATURE_DIM), activation,
                         nn.Linear(FEATURE_DIM, c_out))


def selector() -> nn.Sequential:
    """A per-class ranking head: 32 -> 32 -> BatchNorm1d -> LeakyReLU(0.2) -> 1 (a logit per row)."""
    return head(FEATURE_DIM, 1, nn.LeakyReLU(0.2, inplace=True))


class SSNetVNet(nn.Module):
    """V-Net (BN, Dropout3d ``dropout`` on x5 and before the head) with projection, prediction and per-class
    selector heads. ``forward`` returns the logits only; :meth:`features` also returns ``x9``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, filters: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, filters, "batch", dropout)
        self.decoder = Decoder(num_classes, filters, "batch", "transposed", dropout)
        self.projection = head(filters, FEATURE_DIM, nn.ReLU(inplace=True))
        self.prediction = head(FEATURE_DIM, FEATURE_DIM, nn.ReLU(inplace=True))
        self.selectors = nn.ModuleList(selector() for _ in range(num_classes))
        self.memory_selectors = nn.ModuleList(selector() for _ in range(num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x)).logits

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(N, K, X, Y, Z)`` and ``x9`` ``(N, f, X, Y, Z)``: the head's input (after dropout)."""
        out = self.decoder(self.encoder(x))
        return out.logits, out.features
