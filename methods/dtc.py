"""DTC: dual-task consistency (Luo et al., AAAI 2021; ``dtc.md``).

Follows ``HiLab-git/DTC`` ``code/train_la_dtc.py``:

- network: the SASSNet dual-head V-Net (:class:`~methods.nets.dual_head.DualHeadVNet`, BatchNorm,
  dropout 0.5): a tanh level-set (signed-distance) map ``d`` and a sigmoid segmentation logit ``s``;
- supervised loss on the labeled rows: ``Dice(sigmoid(s_L), y) + beta MSE(d_L, phi_L)`` with the
  normalised ground-truth SDF ``phi`` (:mod:`methods.sdf`) and ``beta = 0.3``;
- dual-task consistency on all rows (labeled and unlabeled) and voxels:
  ``mean((sigmoid(-k d) - sigmoid(s))^2)`` with ``k = 1500`` (negative distance = inside = foreground;
  the code form, authoritative in ``dtc.md``), gradients into both heads; weight
  ``consistency * r(floor(t / 150), 40)`` with ``consistency = 1``;
- SGD (harness defaults), 6,000 iterations of 2 labeled + 2 unlabeled; prediction from the segmentation
  head (1 channel; the harness thresholds its sigmoid at 0.5).

Differences from the official code: the BCE-with-logits term on ``s_L`` that the official script computes
and never adds is not computed; an all-foreground crop gets the SDF -1 instead of NaN (:mod:`methods.sdf`).
Logged terms: ``loss``, ``dice``, ``sdf`` (MSE), ``consistency`` (unweighted), ``consistency_weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .base import Batch, DatasetInfo, Method, NonNegative, Options, Positive, StepContext
from .losses import consistency_weight
from .nets.dual_head import DualHeadVNet
from .registry import register
from .sdf import shape_losses


@dataclass
class DTCOptions(Options):
    """``beta``: SDF regression weight; ``consistency``: lambda_max, ramped over ``consistency_rampup``
    pseudo-epochs of 150 iterations; ``k``: steepness of the SDF-to-mask transform."""

    beta: NonNegative = 0.3
    consistency: NonNegative = 1.0
    consistency_rampup: NonNegative = 40.0
    k: Positive = 1500.0


def sdf_to_mask(sdf: Tensor, k: float = 1500.0) -> Tensor:
    """``T^-1(d) = sigmoid(-k d)``: a steep approximation of the foreground indicator ``d < 0``."""
    return torch.sigmoid(-k * sdf)


@register
class DTC(Method):
    name = "dtc"
    paper = "Luo et al., Semi-supervised medical image segmentation through dual-task consistency, AAAI 2021"
    label = "DTC"
    Options = DTCOptions

    def __init__(self, options: DTCOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        if num_classes != 2:
            raise ValueError(f"dtc segments one foreground class (num_classes 2), got num_classes {num_classes}")
        super().__init__(options, in_channels, num_classes, filters)
        self.net = DualHeadVNet(in_channels, filters)

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 6000, "labeled_bs": 2, "unlabeled_bs": 2}

    def segmenter(self) -> nn.Module:
        return self.net

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n_l = self.options, batch.labeled_bs
        sdf, seg = (out.float() for out in self.net(batch.image))
        dice, mse = shape_losses(sdf[:n_l], seg[:n_l], batch.label)
        consistency = ((sdf_to_mask(sdf, o.k) - torch.sigmoid(seg)) ** 2).mean()
        weight = consistency_weight(ctx.iteration, o.consistency, o.consistency_rampup)
        loss = dice + o.beta * mse + weight * consistency
        ctx.step(loss, terms={"loss": loss, "dice": dice, "sdf": mse, "consistency": consistency})
        ctx.log({"consistency_weight": torch.tensor(weight)})

    def predict(self, x: Tensor) -> Tensor:
        return self.net(x)[1]
