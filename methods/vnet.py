"""Fully supervised V-Net: the tables' lower bound (labeled cases only) and upper bound (all cases).

Follows ``yulequan/UA-MT`` ``code/train_LA.py``: loss = 0.5 * (cross-entropy + Dice on the foreground
softmax), batches of 4 labeled patches, SGD 0.01 with the x0.1 / 2,500 step schedule, 6,000 iterations,
dropout 0.5 in the encoder and decoder during training. Which cases count as labeled is the run's
``labels`` setting: the upper bound is the same method with every training case labeled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .base import Batch, DatasetInfo, Method, Options, StepContext
from .losses import cross_entropy, dice_loss
from .nets.blocks import Norm
from .nets.vnet import VNet
from .registry import register


@dataclass
class VNetOptions(Options):
    norm: Norm = "batch"
    dropout: bool = True


@register
class SupervisedVNet(Method):
    name = "vnet"
    paper = "Milletari et al., V-Net, 3DV 2016 (the UA-MT lineage's non-residual variant, MICCAI 2019)"
    label = "V-Net"
    Options = VNetOptions

    def __init__(self, options: VNetOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = VNet(in_channels, num_classes, filters, options.norm, dropout=options.dropout)

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 6000, "labeled_bs": 4, "unlabeled_bs": 0}

    def segmenter(self) -> nn.Module:
        return self.net

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        logits = self.net(batch.labeled).float()
        ce = cross_entropy(logits, batch.label)
        dice = dice_loss(logits.softmax(1)[:, 1], batch.label)
        loss = 0.5 * (ce + dice)
        ctx.step(loss, terms={"loss": loss, "ce": ce, "dice": dice})
