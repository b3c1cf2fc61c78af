"""FUSSNet: epistemic uncertainty splits the unlabeled voxels, aleatoric uncertainty guides the labeled ones
(``fussnet.md``; ``grant-jpg/FUSSNet`` ``train_LA.py``, ``train_panc.py``; only the paper's abstract was
readable, the official code is primary).

Network: the CoraNet-lineage V-Net (InstanceNorm, no dropout) with four full-resolution branches
(:class:`~methods.nets.branched_vnet.BranchedVNet`, 9,464,152 parameters) trained with cross-entropy (branch 0),
Dice (1), focal (2, gamma 2) and soft IoU (3) (:mod:`methods.region_losses`), an aleatoric head
(:class:`~methods.nets.aleatoric.StochasticHead`, 408 parameters) on the shared feature ``u8 + x1``, and an
EMA teacher. Prediction and validation: branch 0 (all four are computed, as in the official test).

Stages (epochs are converted to iterations from the split sizes, ``N_L`` / ``N_U``):

1. ``pretrain``: ``pretrain_epochs`` x ``ceil(5 N_L / pretrain_batch_size)`` iterations of
   ``pretrain_batch_size`` labeled patches; ``loss = (ce + dice + focal + iou) / 4``. Selects its best
   checkpoint under ``selection: heldout``; stage 2 starts from it with its Adam state (official).
2. ``self_train``: ``epochs`` x ``E`` iterations, ``E = min(ceil(5 N_L / b), floor(N_U / b))`` with ``b =
   batch_size`` (2): ``b`` labeled random crops + ``b`` pseudo-labeled crops. At its start the teacher is
   copied from the student. Every ``refresh_every`` (10) epochs, from epoch 0, the **student** predicts each
   unlabeled volume's fixed CoraNet centre crop (:func:`~methods.volume_ops.centre_crop`, patch-sized):
   ``p_k = 1[softmax(o_k)_fg >= 0.5]``, certain voxels ``m = (p_0 == p_2) & (p_1 == p_3)``, pseudo-label
   ``p_2``; they stay frozen until the next refresh and are saved with the method's state (bit-packed), so
   a resumed run continues exactly. Per iteration:

   - ``sup = (ce + dice + focal + iou + al_weight * aleatoric) / (4 + al_weight)`` on the labeled rows, with
     ``aleatoric`` the mean cross-entropy of 20 antithetic draws of the low-rank Gaussian over the logits
     (covariance restricted to the labeled foreground);
   - ``certain = (ce_m + dice_m + focal_m + iou_m) / 4`` against the pseudo-labels on the certain voxels;
   - ``uncertain = lambda(e) / 4 * sum_k sum_v (1 - m_v) sum_c (softmax(o_k)_c - softmax(o_k^EMA)_c)^2 /
     (sum_v (1 - m_v) + 1e-16)``, same crops for student and teacher, ``lambda(e) = consistency *
     r(e, 40)`` with ``e`` the self-training epoch (:func:`~methods.losses.consistency_weight` with period
     ``E``);
   - ``loss = sup + certain + uncertain``; Adam step; EMA ``alpha = min(1 - 1 / (g + 1), 0.99)``, ``g = t +
     ceil(5 N_L / b) * pretrain_epochs`` (the official step count).

Recipe (``recipe`` preset): ``la`` (``al_weight`` 0.8, stage 1 40 epochs of 4, stage 2 301 epochs) or
``pancreas`` (0.1, 60 epochs of 2, 201 epochs). ``auto``, the default, is resolved from the dataset's protocol
family (:class:`~methods.base.DatasetInfo`): ``la`` on LA, ``pancreas`` on both pancreas protocols and on lung
(ours), ``la`` on other datasets; the resolved recipe and its values are what ``config.yaml`` records. Both:
Adam(1e-3, betas (0.5, 0.999)), constant lr, no weight decay, no augmentation (``rotflip: false``).

Variants (``variant``; the official code cannot run end to end, see the spec):

- ``masked_voxels``: ``true`` (paper, bug fixed, ours) CE and focal of the certain term averaged over the
  certain voxels; ``false`` (official) ``mean(CE) * sum(m) / (sum(m) + 1e-16)``, i.e. unmasked.
- ``train_aleatoric``: ``true`` (paper, bug fixed) the aleatoric head is optimised; ``false`` (official) it
  is created after the optimiser and keeps its initial weights (only the trunk receives ``aleatoric``
  gradients).
- ``pseudo_patch``: ``null`` (paper, bug fixed, ours) pseudo-labeled crops are patch-sized; ``[96, 96, 96]``
  (official) the centre crop is re-cropped CoraNet-style to 96^3 (LA: 112 x 112 x 80 -> central 96 x 96
  in-plane, Z zero-padded 80 -> 96 with pseudo-label 0 and certainty 0; identity for pancreas).

Suite choices (ours): stage 1 runs the committed ``pretrain()`` (the official ``train()`` loads an author
checkpoint of unknown origin) without its unused EMA; ``epochs: null`` (and ``budget: uniform``) runs the
self-training stage for the run's ``iterations``, which otherwise caps every stage (``run_defaults`` sets it to
15,000, above every official epoch budget, so that ``--set iterations=N`` shortens a run); the batches come
from the harness's two-stream sampler (random permutations instead of the official fixed-order repeated
list and shuffled drop-last pseudo-labeled loader; labeled crops pad ``+3`` per side as in
``protocols.md`` section 6 instead of CoraNet's ``+1``, which only matters for volumes not larger than the
patch); the harness's random unlabeled crops are ignored in favour of the centre crops (the option
``unlabeled_crop: random`` of the spec is not implemented); selection follows ``protocols.md`` section 10
instead of test-set Dice every 5 or 10 epochs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    Batch,
    DatasetInfo,
    Fraction,
    Method,
    NonNegative,
    OptimizerSpec,
    Options,
    PositiveInt,
    Probability,
    Range,
    RunInfo,
    Stage,
    StepContext,
)
from .ema import make_teacher, update_ema
from .helpers import full_precision
from .losses import consistency_weight
from .nets.aleatoric import StochasticHead, antithetic_samples
from .nets.branched_vnet import BranchedVNet
from .region_losses import cross_entropy_map, focal_map, region_mean, soft_dice_loss, soft_iou_loss
from .registry import register
from .volume_ops import centre_crop

#: Branch order of the official network: the loss each branch is trained with.
BRANCHES = ("ce", "dice", "focal", "iou")
#: The labeled list is repeated this often per epoch (``__len__`` of the official datasets).
REPEAT_LABELED = 5

VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"masked_voxels": True, "train_aleatoric": True, "pseudo_patch": None},
    "official": {"masked_voxels": False, "train_aleatoric": False, "pseudo_patch": (96, 96, 96)},
}
RECIPES: dict[str, dict[str, Any]] = {
    "la": {"al_weight": 0.8, "pretrain_epochs": 40, "pretrain_batch_size": 4, "epochs": 301},
    "pancreas": {"al_weight": 0.1, "pretrain_epochs": 60, "pretrain_batch_size": 2, "epochs": 201},
}
PRESETS = {"variant": VARIANTS, "recipe": RECIPES}
#: ``recipe: auto`` per protocol family (lung and other datasets: ours).
AUTO_RECIPE = {"la": "la", "pancreas": "pancreas", "lung": "pancreas", "other": "la"}


@dataclass
class FUSSNetOptions(Options):
    variant: Literal["paper", "official"] = "paper"
    recipe: Literal["auto", "la", "pancreas"] = "auto"
    al_weight: NonNegative = 0.8
    rank: PositiveInt = 10
    mc_samples: Annotated[int, Range(2)] = 20
    pretrain_epochs: PositiveInt = 40
    pretrain_batch_size: PositiveInt = 4
    epochs: PositiveInt | None = 301
    batch_size: PositiveInt = 2
    refresh_every: PositiveInt = 10
    consistency: NonNegative = 1.0
    consistency_rampup: NonNegative = 40.0
    ema_decay: Fraction = 0.99
    betas: tuple[Probability, Probability] = (0.5, 0.999)
    masked_voxels: bool = True
    train_aleatoric: bool = True
    pseudo_patch: tuple[PositiveInt, PositiveInt, PositiveInt] | None = None

    def __post_init__(self) -> None:
        if self.mc_samples % 2:
            raise ValueError(f"invalid value {self.mc_samples!r} for 'mc_samples'; expected an even number >= 2")


def branch_losses(logits: Sequence[Tensor], target: Tensor, region: Tensor | None = None,
                  voxelwise: bool = True) -> dict[str, Tensor]:
    """Each branch's own loss against ``target`` (N, X, Y, Z) on ``region`` (N, X, Y, Z) or every voxel.

    ``voxelwise=False`` is the official certain term: CE and focal are mean-reduced over all voxels before
    being multiplied by the region and divided by its size (Dice and IoU are always restricted).
    """
    ce, focal = cross_entropy_map(logits[0], target), focal_map(logits[2], target)
    if region is None or voxelwise:
        ce, focal = region_mean(ce, region), region_mean(focal, region)
    else:
        share = region.sum() / (region.sum() + 1e-16)
        ce, focal = ce.mean() * share, focal.mean() * share
    return {"ce": ce, "dice": soft_dice_loss(logits[1], target, region), "focal": focal,
            "iou": soft_iou_loss(logits[3], target, region)}


def masked_softmax_mse(student: Tensor, teacher: Tensor, region: Tensor) -> Tensor:
    """``sum_v r_v sum_c (softmax(s)_c - softmax(t)_c)^2 / (sum_v r_v + 1e-16)``; logits (N, K, X, Y, Z),
    ``region`` (N, X, Y, Z)."""
    dist = ((student.softmax(1) - teacher.detach().softmax(1)) ** 2).sum(1)
    return (dist * region).sum() / (region.sum() + 1e-16)


@register
class FUSSNet(Method):
    name = "fussnet"
    paper = ("Xiang et al., FUSSNet: Fusing two sources of uncertainty for semi-supervised medical image "
             "segmentation, MICCAI 2022")
    label = "FUSSNet"
    Options = FUSSNetOptions
    presets = PRESETS
    options: FUSSNetOptions

    def __init__(self, options: FUSSNetOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = BranchedVNet(in_channels, num_classes, filters, branches=len(BRANCHES), norm="instance")
        self.teacher = make_teacher(self.net)
        self.aleatoric = StochasticHead(filters, num_classes, options.rank)
        self.aleatoric.requires_grad_(options.train_aleatoric)
        self.pseudo: Tensor | None = None  # bool (N_U, 2, *crop): pseudo-label, certain

    @classmethod
    def auto_options(cls, dataset: DatasetInfo) -> dict[str, Any]:
        return {"recipe": AUTO_RECIPE[dataset.family]}

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        assert isinstance(options, FUSSNetOptions)
        return {"iterations": 15000, "labeled_bs": options.batch_size, "unlabeled_bs": options.batch_size,
                "rotflip": False, "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
                "schedule": {"name": "constant"}}

    # ------------------------------------------------------------------ plan
    def labeled_steps(self, n_labeled: int, batch_size: int) -> int:
        """Steps of one pass over the labeled list repeated 5x (no drop-last)."""
        return math.ceil(REPEAT_LABELED * n_labeled / batch_size)

    def epoch_length(self, n_labeled: int, n_unlabeled: int) -> int:
        """Self-training steps per epoch: the shorter of the labeled and the pseudo-labeled (drop-last) loader."""
        b = self.options.batch_size
        steps = min(self.labeled_steps(n_labeled, b), n_unlabeled // b)
        if steps < 1:
            raise ValueError(f"fussnet needs at least batch_size={b} unlabeled cases, got {n_unlabeled}")
        return steps

    def stages(self, run: RunInfo) -> tuple[Stage, ...]:
        o = self.options
        pretrain = o.pretrain_epochs * self.labeled_steps(run.n_labeled, o.pretrain_batch_size)
        epochs = None if run.budget == "uniform" else o.epochs
        main = None if epochs is None else epochs * self.epoch_length(run.n_labeled, run.n_unlabeled)
        return (Stage("pretrain", pretrain, o.pretrain_batch_size, 0, select_best=True),
                Stage("self_train", main, o.batch_size, o.batch_size))

    def optimizers(self, main: OptimizerSpec) -> dict[str, OptimizerSpec]:
        specs = super().optimizers(main)
        return {"main": dataclasses.replace(specs["main"], betas=self.options.betas)}

    def segmenter(self) -> nn.Module:
        return self.net

    # ------------------------------------------------------- pseudo-labels
    def get_extra_state(self) -> dict[str, Any]:
        if self.pseudo is None:
            return {}
        return {"shape": list(self.pseudo.shape), "bits": torch.from_numpy(np.packbits(self.pseudo.numpy()))}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if not state:
            self.pseudo = None
            return
        shape = state["shape"]
        bits = np.unpackbits(state["bits"].numpy(), count=math.prod(shape))
        self.pseudo = torch.from_numpy(bits.reshape(shape).astype(bool))

    def _pseudo_crop(self, image: np.ndarray, patch: Sequence[int]) -> np.ndarray:
        """A volume's fixed pseudo-labeled crop: its patch-sized centre crop, re-cropped to ``pseudo_patch``."""
        crop = centre_crop(image, patch)
        return crop if self.options.pseudo_patch is None else centre_crop(crop, self.options.pseudo_patch)

    @torch.no_grad()
    def refresh_pseudo_labels(self, ctx: StepContext, patch: Sequence[int]) -> None:
        """Student predictions on every unlabeled volume's patch-sized centre crop -> ``self.pseudo``."""
        maps = []
        for image in ctx.data.unlabeled:
            x = torch.from_numpy(centre_crop(image, patch))[None, None].to(ctx.device)
            logits = self.net(x)
            fg = [o.float().softmax(1)[0, 1] >= 0.5 for o in logits]
            certain = (fg[0] == fg[2]) & (fg[1] == fg[3])
            pair = torch.stack([fg[2], certain]).cpu().numpy()
            if self.options.pseudo_patch is not None:
                pair = np.stack([centre_crop(a, self.options.pseudo_patch) for a in pair])
            maps.append(pair)
        self.pseudo = torch.from_numpy(np.stack(maps))

    def pseudo_batch(self, ctx: StepContext, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Images (B_U, 1, *crop), pseudo-labels int64 and certainty float (B_U, *crop) of the batch's
        unlabeled cases."""
        assert self.pseudo is not None and batch.unlabeled_index is not None
        patch = tuple(batch.image.shape[2:])
        index = batch.unlabeled_index.tolist()
        images = np.stack([self._pseudo_crop(ctx.data.unlabeled[i], patch) for i in index])
        pseudo = self.pseudo[index].to(ctx.device)
        return torch.from_numpy(images)[:, None].to(ctx.device), pseudo[:, 0].long(), pseudo[:, 1].float()

    # -------------------------------------------------------------- training
    def on_stage_start(self, ctx: StepContext) -> None:
        if ctx.stage == "self_train":
            self.teacher.load_state_dict(self.net.state_dict())

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        if ctx.stage == "pretrain":
            terms = branch_losses([o.float() for o in self.net(batch.labeled)], batch.label)
            terms = {"loss": sum(terms.values()) / len(terms), **terms}
        else:
            terms = self._self_train(ctx, batch)
        ctx.step(terms["loss"], terms=terms)

    def _self_train(self, ctx: StepContext, batch: Batch) -> dict[str, Tensor]:
        o = self.options
        epoch_length = self.epoch_length(len(ctx.data.labeled), len(ctx.data.unlabeled))
        if ctx.iteration % (o.refresh_every * epoch_length) == 0:
            self.refresh_pseudo_labels(ctx, tuple(batch.image.shape[2:]))
        image, pseudo, certain = self.pseudo_batch(ctx, batch)
        features = self.net.trunk(batch.labeled)
        labeled = self.net.heads(features)
        unlabeled = self.net(image)
        with torch.no_grad():
            teacher = self.teacher(image)
        labeled, unlabeled, teacher = ([x.float() for x in xs] for xs in (labeled, unlabeled, teacher))
        with full_precision(features):
            _, dist = self.aleatoric(features.float(), (batch.label > 0).float())
            samples = antithetic_samples(dist, o.mc_samples).flatten(0, 1).unflatten(1, (self.num_classes, -1))
        target = batch.label.flatten(1).repeat(o.mc_samples, 1)
        aleatoric = F.cross_entropy(samples, target)

        sup = branch_losses(labeled, batch.label)
        supervised = (sum(sup.values()) + o.al_weight * aleatoric) / (len(sup) + o.al_weight)
        certain_terms = branch_losses(unlabeled, pseudo, certain, voxelwise=o.masked_voxels)
        certain_loss = sum(certain_terms.values()) / len(certain_terms)
        weight = consistency_weight(ctx.iteration, o.consistency, o.consistency_rampup, period=epoch_length)
        mse = sum(masked_softmax_mse(s, t, 1 - certain) for s, t in zip(unlabeled, teacher)) / len(unlabeled)
        loss = supervised + certain_loss + weight * mse
        return {"loss": loss, "supervised": supervised, **sup, "aleatoric": aleatoric, "certain": certain_loss,
                "uncertain": weight * mse, "consistency_weight": torch.tensor(weight),
                "certain_fraction": certain.mean()}

    def after_step(self, ctx: StepContext) -> None:
        if ctx.stage == "self_train":
            o = self.options
            pretrain_steps = self.labeled_steps(len(ctx.data.labeled), o.batch_size) * o.pretrain_epochs
            update_ema(self.teacher, self.net, o.ema_decay, ctx.iteration + pretrain_steps)

    def predict(self, x: Tensor) -> Tensor:
        return self.net(x)[0]
