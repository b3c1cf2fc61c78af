"""MC-Net+: mutual consistency between three decoders (``mcnet_plus.md``; ``ycwu1997/MC-Net``, ``mcnet3d_v2``).

One V-Net encoder feeds three decoders that differ only in their up-sampling (transposed conv, trilinear,
nearest); dropout 0.5 on x5 and before every head during training. With ``p_k`` the softmax of decoder k
on all rows:

- ``dice = sum_k Dice(p_k[labeled, fg], y)``, the unsquared batch-pooled Dice (eps 1e-8);
- ``mc = sum_{k != l} mean((p_k - s(p_l))^2)`` over all rows, both channels and all voxels (6 ordered
  pairs), with the sharpening ``s(p) = p^(1/T) / (p^(1/T) + (1 - p)^(1/T))``, ``T = temperature = 0.1``;
- ``loss = seg_weight * dice + lambda * mc`` with ``seg_weight = 0.5`` and
  ``lambda = consistency * r(floor((t + 1) / 150), consistency_rampup)``: the official script increments
  its counter before computing the weight, so the ramp sees ``t + 1`` (``t = ctx.iteration``).

The cross-entropy of every decoder on the labeled rows is computed and logged (``ce``, summed over the
decoders) but, as in the official code, not trained on. Recipe (:meth:`MCNetPlus.run_defaults`): 15,000
iterations of 2 labeled + 2 unlabeled patches, SGD 0.01 at a **constant** learning rate.

Options and variants:

- ``detach_targets``: the official code does not detach the sharpened targets (its buffers keep the
  graph), so gradients reach both decoders of a pair; ``false`` in both variants (the paper's text could
  not be read, the code is primary), ``true`` treats ``s(p_l)`` as a constant. ``variant: paper`` and
  ``variant: official`` therefore coincide.
- ``predict_from``: ``decoder1`` (official test: encoder + decoder 1 only) or ``mean`` (ours: the average of
  the three decoders' softmax probabilities, returned as its logarithm so that the harness's softmax
  gives it back; the official unused "average" branch thresholded averaged logits without softmax and is
  not reproduced).
- Computed on the device rather than in the official CPU buffers (same arithmetic).

The segmenter (counted by ``sslbench complexity``) is the three-decoder network, 15,246,566 parameters;
inference with ``decoder1`` runs 9,448,866 of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .base import Batch, DatasetInfo, Method, NonNegative, Options, Positive, StepContext
from .losses import consistency_weight, cross_entropy
from .nets.mcnet import MultiDecoderVNet
from .registry import register
from .wu_losses import binary_dice_loss


@dataclass
class MCNetPlusOptions(Options):
    """``seg_weight``: weight of the summed Dice (the official ``lamda``); ``consistency``: the maximal
    mutual-consistency weight, ramped over ``consistency_rampup`` pseudo-epochs of 150 iterations."""

    variant: Literal["paper", "official"] = "paper"
    temperature: Positive = 0.1
    seg_weight: NonNegative = 0.5
    consistency: NonNegative = 1.0
    consistency_rampup: NonNegative = 40.0
    detach_targets: bool = False
    predict_from: Literal["decoder1", "mean"] = "decoder1"
    dropout: bool = True


def sharpen(p: Tensor, temperature: float) -> Tensor:
    """``p^(1/T) / (p^(1/T) + (1 - p)^(1/T))`` element-wise on probabilities in [0, 1]."""
    a, b = p ** (1 / temperature), (1 - p) ** (1 / temperature)
    return a / (a + b)


def mutual_consistency(probs: Sequence[Tensor], temperature: float, detach_targets: bool = False) -> Tensor:
    """``sum_{k != l} mean((p_k - s(p_l))^2)`` over the decoders' probabilities ``(N, K, X, Y, Z)``."""
    targets = [sharpen(p.detach() if detach_targets else p, temperature) for p in probs]
    return sum(((p - s) ** 2).mean() for k, p in enumerate(probs) for j, s in enumerate(targets) if k != j)


@register
class MCNetPlus(Method):
    name = "mcnet_plus"
    paper = "Wu et al., Mutual consistency learning for semi-supervised medical image segmentation, MedIA 2022"
    label = "MC-Net+"
    Options = MCNetPlusOptions
    presets: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {
        "variant": {"paper": {"detach_targets": False}, "official": {"detach_targets": False}}}
    options: MCNetPlusOptions

    def __init__(
        self, options: MCNetPlusOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16
    ) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = MultiDecoderVNet(in_channels, num_classes, filters, dropout=0.5 if options.dropout else 0.0)

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 15000, "labeled_bs": 2, "unlabeled_bs": 2, "schedule": {"name": "constant"}}

    def segmenter(self) -> nn.Module:
        return self.net

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n = self.options, batch.labeled_bs
        outputs = self.net(batch.image)
        probs = [logits.float().softmax(1) for logits in outputs]
        dice = sum(binary_dice_loss(p[:n, 1], batch.label == 1) for p in probs)
        with torch.no_grad():
            ce = sum(cross_entropy(logits[:n].float(), batch.label) for logits in outputs)
        mc = mutual_consistency(probs, o.temperature, o.detach_targets)
        weight = consistency_weight(ctx.iteration + 1, o.consistency, o.consistency_rampup)
        loss = o.seg_weight * dice + weight * mc
        ctx.step(loss, terms={"loss": loss, "dice": dice, "mc": mc, "ce": ce})

    def training_forward(self, x: Tensor) -> list[Tensor]:
        """The three decoders' logits."""
        return self.net(x)

    def predict(self, x: Tensor) -> Tensor:
        """Decoder 1's logits, or the log of the three decoders' mean softmax (``predict_from: mean``)."""
        if self.options.predict_from == "decoder1":
            return self.net.decoders[0](self.net.encoder(x)).logits
        mean = torch.stack([logits.float().softmax(1) for logits in self.net(x)]).mean(0)
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()
