"""CAML: correlation-aware mutual learning of two sub-networks (``caml.md``; Gao et al., MICCAI 2023).

Read at ``Herschel555/CAML`` commit b63547927eef5b7ae47bd62452e28517d13545e4 (all code is from 3b1dbc1,
"Initialize CAML"); the paper text beyond the abstract could not be read, so the code is primary.

Network (:class:`~methods.nets.caml.CAMLNet`, 20,128,836 parameters): branch V (the V-Net, transposed-conv
decoder), branch A (its own encoder with cross-sample attention at x4 in training mode, trilinear decoder)
and voxel-wise projection heads ``g_V``, ``g_A`` and prediction heads ``h_V``, ``h_A``. With ``p_k`` the
softmax of branch k on all rows, ``e_k`` its 16-channel full-resolution feature (``t = ctx.iteration``):

- ``dice = sum_k Dice(p_k[labeled, fg], y)``, the unsquared batch-pooled Dice of MC-Net+ (eps 1e-8);
- ``mc = sum_{k != l} mean((p_k - s(p_l))^2)`` with the sharpening ``s`` of MC-Net+ (``temperature`` 0.1),
  targets not detached (``detach_targets``);
- memory: for every labeled row, the voxels that both branches classify correctly give rows
  ``z = (g_V(e_V) + g_A(e_A)) / 2`` (heads in eval mode, no gradient) that replace the case's slot; then
  ``memory_num`` (256) rows per class are drawn uniformly without replacement from all filled slots (a
  class with fewer rows is absent);
- ``occ``: on the unlabeled voxels where both branches agree, ``u_k = h_k(g_k(e_k))`` (train-mode BN over
  those rows); per class of branch V's label, the ``num_filtered`` (12,800) voxels of highest branch-V
  confidence (classes with more than one such voxel) give ``C_k = softmax(u_k M^T / 0.1)`` over the
  memory rows ``M``; ``occ = mean_n sum_j -C_A log(C_V + 1e-8)``, gradients through both sides, 0 when
  no row or no memory exists;
- ``loss = 0.5 dice + lambda_c mc + lambda_o occ`` with ``lambda_c = 1.0 r(floor((t + 1) / 150), R)`` and
  ``lambda_o = 0.05 r(floor((t + 1) / 150), R)`` (the official counter is incremented first).

Recipe (:meth:`CAML.run_defaults`): 15,000 iterations of 2 labeled + 2 unlabeled patches, SGD(0.01,
momentum 0.9, wd 1e-4) at a **constant** learning rate (``--set schedule.name=step``: the suite's x0.1 /
2,500 convention). Prediction: branch V (``predict_from: V``) or the
mean of both branches' softmax (``mean``, ours; eval mode, so branch A runs without attention).

Official code versus the paper variant (``variant: official`` selects the former):

- ``labeled_proj_layout: buggy`` (official): ``code/train_caml.py`` lines 197-206 permute ``e_V`` to
  voxel rows but reshape ``e_A`` (N, 16, X, Y, Z) directly into rows of 16, so ``g_A`` sees 16 consecutive
  Z values of one channel and the memory rows are ``(g_V(e_V) + garbage) / 2``; ``fixed`` (paper) permutes
  both.

Shared by both variants, from the official code (no difference from what the abstract states):

- ``consistency_rampup`` R: ``None`` takes the released runs' value for the label count (the run folders
  of ``model/``: 4 labels 40, 8 labels 20, 16 labels 15; 40 otherwise, the ``train_caml.py`` line 53
  default); a number fixes it.
- The attention is intra-sample then inter-sample at x4 of encoder A, in training mode only
  (``code/networks/VNet.py`` lines 242-348); ``cma: inter_only | none`` are ablations (the class's
  ``cma_type != 'v2+'`` path and ours).
- The memory heads run in eval mode (``model.eval()`` around them, ``train_caml.py`` lines 201-207), so
  their BatchNorm uses running statistics; the unlabeled heads run in train mode.
- The head width is 32 (``CAML3d_v1(feat_dim=32)``); ``--embedding_dim 64`` is a dead flag
  (``train_caml.py`` line 56).
- Test: branch V, no LCC (``code/test_3d.py`` lines 61-78); the harness's ``eval.lcc`` is off by default.

Choices of this suite (ours):

- Memory storage: the official bank keeps every correctly classified voxel of a case (up to about 1 M
  rows of 32 floats per LA case, ``code/utils/feature_memory.py``). Here each slot keeps, per class, a
  uniform random subset of ``memory_num`` rows and the class's row count; a draw takes per-slot counts
  from the multivariate hypergeometric distribution of the counts, then that many of the slot's kept rows.
  Every draw is distributed exactly as the official uniform draw from the union; draws of iterations
  between two visits of a case reuse its kept subset. The bank is part of the checkpoint (small).
- ``feature_norm: l2`` (cosine correlations) and ``detach_occ_target`` (constant ``C_A``) are options; the
  official logits are raw dot products and neither side is detached.
- All terms are computed on the device (the official consistency term uses CPU buffers, same arithmetic);
  the batches come from the harness's two-stream sampler; checkpoint selection is the harness's (the
  official code saves the best in-training Dice on the **test** set, ``train_caml.py`` lines 280-295, but
  the paper uses the final iteration).

Logged terms: ``loss``, ``dice``, ``mc``, ``occ``, ``occ_rows`` (correlation rows used) and ``memory``
(1 when both classes have memory rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (
    Batch,
    DatasetInfo,
    Method,
    NonNegative,
    Options,
    Positive,
    Range,
    RunInfo,
    Stage,
    StepContext,
)
from .helpers import eval_mode
from .losses import consistency_weight
from .mcnet_plus import mutual_consistency
from .nets.caml import CMA, CAMLNet
from .registry import register
from .ssnet import voxel_rows
from .wu_losses import binary_dice_loss

#: ``consistency_rampup`` of the released runs by label count (``model/LA_CAML_<n>_..._rampup_<R>_...``).
RELEASED_RAMPUP = {4: 40.0, 8: 20.0, 16: 15.0}
DEFAULT_RAMPUP = 40.0
PRESETS = {"variant": {"paper": {"labeled_proj_layout": "fixed"}, "official": {"labeled_proj_layout": "buggy"}}}


@dataclass
class CAMLOptions(Options):
    """``consistency`` / ``consistency_o``: the maximal weights of ``mc`` / ``occ``; ``consistency_rampup``:
    R in pseudo-epochs of 150 iterations (``None``: by label count); ``memory_num``: memory rows per class;
    ``num_filtered``: unlabeled rows per class in ``occ``; ``occ_temperature``: the correlation softmax's."""

    variant: Literal["paper", "official"] = "paper"
    labeled_proj_layout: Literal["fixed", "buggy"] = "fixed"
    seg_weight: NonNegative = 0.5
    consistency: NonNegative = 1.0
    consistency_o: NonNegative = 0.05
    consistency_rampup: NonNegative | None = None
    temperature: Positive = 0.1
    memory_num: Annotated[int, Range(2)] = 256
    num_filtered: Annotated[int, Range(2)] = 12800
    occ_temperature: Positive = 0.1
    feature_norm: Literal["none", "l2"] = "none"
    detach_targets: bool = False
    detach_occ_target: bool = False
    cma: CMA = "intra_inter"
    predict_from: Literal["V", "mean"] = "V"


@dataclass
class Slot:
    """One labeled case's memory: per class, a uniform random subset ``(<= memory_num, 32)`` of its rows
    in random order, and the number of rows it was drawn from."""

    rows: list[Tensor]
    counts: list[int]


def fill_slot(z: Tensor, labels: Tensor, size: int, num_classes: int) -> Slot:
    """Keep at most ``size`` rows of ``z`` ``(M, D)`` per class of ``labels`` ``(M,)`` (torch's generator)."""
    rows, counts = [], []
    for c in range(num_classes):
        members = z[labels == c]
        rows.append(members[torch.randperm(len(members), device=z.device)[:size]])
        counts.append(len(members))
    return Slot(rows, counts)


def sample_memory(slots: list[Slot], size: int, num_classes: int) -> list[Tensor | None]:
    """``size`` rows per class drawn uniformly without replacement from the union of the slots' rows
    (``None`` for a class with fewer): per-slot counts from the multivariate hypergeometric distribution,
    then that many of the slot's kept rows. Randomness from torch's generator."""
    rng = np.random.default_rng(int(torch.randint(2**62, ())))
    memory: list[Tensor | None] = []
    for c in range(num_classes):
        counts = np.array([s.counts[c] for s in slots], dtype=np.int64)
        if counts.sum() < size:
            memory.append(None)
            continue
        taken = rng.multivariate_hypergeometric(counts, size)
        parts = [s.rows[c][torch.randperm(len(s.rows[c]), device=s.rows[c].device)[:k]]
                 for s, k in zip(slots, taken.tolist()) if k]
        memory.append(torch.cat(parts))
    return memory


def correlations(u: Tensor, memory: Tensor, index: list[Tensor], temperature: float, l2: bool) -> Tensor:
    """``softmax(u[i] M^T / T)`` stacked over the (non-empty list of) row sets ``index``.

    ``u``: ``(M, D)`` embeddings; ``memory``: ``(R, D)``; ``index``: per class, the rows to correlate.
    """
    if l2:
        u, memory = F.normalize(u, dim=1), F.normalize(memory, dim=1)
    return torch.cat([(u[i] @ memory.T / temperature).softmax(1) for i in index])


@register
class CAML(Method):
    name = "caml"
    paper = "Gao et al., Correlation-aware mutual learning for semi-supervised medical image segmentation, MICCAI 2023"
    label = "CAML"
    Options = CAMLOptions
    presets: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = PRESETS
    options: CAMLOptions

    def __init__(self, options: CAMLOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = CAMLNet(in_channels, num_classes, filters, dropout=0.5, cma=options.cma)
        self.rampup = DEFAULT_RAMPUP if options.consistency_rampup is None else options.consistency_rampup
        self.slots: dict[int, Slot] = {}

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        return {"iterations": 15000, "labeled_bs": 2, "unlabeled_bs": 2, "schedule": {"name": "constant"}}

    def stages(self, run: RunInfo) -> tuple[Stage, ...]:
        """One stage; fixes ``consistency_rampup: None`` from the label count."""
        if self.options.consistency_rampup is None:
            self.rampup = RELEASED_RAMPUP.get(run.n_labeled, DEFAULT_RAMPUP)
        return (Stage(),)

    def segmenter(self) -> nn.Module:
        return self.net

    def get_extra_state(self) -> dict[str, Any]:
        return {"slots": {i: (s.rows, s.counts) for i, s in self.slots.items()}}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.slots = {int(i): Slot(list(rows), list(counts)) for i, (rows, counts) in state.get("slots", {}).items()}

    @torch.no_grad()
    def update_memory(self, e_v: Tensor, e_a: Tensor, correct: Tensor, label: Tensor, cases: list[int]) -> None:
        """Replace the slots of ``cases`` with the rows of their correctly classified voxels.

        ``e_v``, ``e_a``: labeled features ``(L, f, X, Y, Z)``; ``correct``: ``(L, X, Y, Z)`` bool.
        """
        net, keep = self.net, correct.reshape(-1)
        rows_a = voxel_rows(e_a) if self.options.labeled_proj_layout == "fixed" else e_a.reshape(-1, e_a.shape[1])
        with eval_mode(net.projection_v), eval_mode(net.projection_a):
            z = (net.projection_v(voxel_rows(e_v)[keep]) + net.projection_a(rows_a[keep])) / 2
        per_case = correct.flatten(1).sum(1).tolist()
        for case, z_i, y_i in zip(cases, z.split(per_case), label[correct].split(per_case)):
            self.slots[case] = fill_slot(z_i, y_i, self.options.memory_num, self.num_classes)

    def omni_correlation(self, e_v: Tensor, e_a: Tensor, p_v: Tensor, p_a: Tensor,
                         memory: list[Tensor | None]) -> tuple[Tensor, int]:
        """``occ`` on the unlabeled rows and the number of correlation rows (0: ``occ = 0``)."""
        o, net = self.options, self.net
        bank = [m for m in memory if m is not None and len(m) > 1]
        conf, label = p_v.detach().max(1)
        agree = label == p_a.detach().argmax(1)
        if not bank or not agree.any():
            return p_v.new_zeros(()), 0
        conf, label = conf[agree], label[agree]
        index = []
        for c in range(self.num_classes):
            members = (label == c).nonzero().squeeze(1)
            if len(members) > 1:
                index.append(members[conf[members].argsort(descending=True)[: o.num_filtered]])
        if not index:
            return p_v.new_zeros(()), 0
        keys = torch.cat(bank)
        u_v = net.prediction_v(net.projection_v(voxel_rows(e_v)[agree.reshape(-1)]))
        u_a = net.prediction_a(net.projection_a(voxel_rows(e_a)[agree.reshape(-1)]))
        c_v = correlations(u_v, keys, index, o.occ_temperature, o.feature_norm == "l2")
        c_a = correlations(u_a, keys, index, o.occ_temperature, o.feature_norm == "l2")
        if o.detach_occ_target:
            c_a = c_a.detach()
        return (-c_a * torch.log(c_v + 1e-8)).sum(1).mean(), len(c_v)

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o, n = self.options, batch.labeled_bs
        if batch.labeled_index is None:
            raise ValueError("caml needs the labeled rows' case indices (Batch.labeled_index)")
        out = self.net(batch.image)
        p_v, p_a = out.logits_v.float().softmax(1), out.logits_a.float().softmax(1)
        e_v, e_a = out.features_v.float(), out.features_a.float()
        dice = sum(binary_dice_loss(p[:n, 1], batch.label == 1) for p in (p_v, p_a))
        mc = mutual_consistency([p_v, p_a], o.temperature, o.detach_targets)
        correct = (p_v[:n].argmax(1) == batch.label) & (p_a[:n].argmax(1) == batch.label)
        self.update_memory(e_v[:n], e_a[:n], correct, batch.label, batch.labeled_index.tolist())
        memory = sample_memory(list(self.slots.values()), o.memory_num, self.num_classes)
        occ, rows = self.omni_correlation(e_v[n:], e_a[n:], p_v[n:], p_a[n:], memory)
        lambda_c = consistency_weight(ctx.iteration + 1, o.consistency, self.rampup)
        lambda_o = consistency_weight(ctx.iteration + 1, o.consistency_o, self.rampup)
        loss = o.seg_weight * dice + lambda_c * mc + lambda_o * occ
        ctx.step(loss, terms={"loss": loss, "dice": dice, "mc": mc, "occ": occ})
        ctx.log({"occ_rows": torch.tensor(float(rows)), "memory": torch.tensor(float(all(m is not None for m in memory)))})

    def training_forward(self, x: Tensor) -> Any:
        """Both branches (logits and features)."""
        return self.net(x)

    def predict(self, x: Tensor) -> Tensor:
        """Branch V's logits, or the log of both branches' mean softmax (``predict_from: mean``)."""
        if self.options.predict_from == "V":
            return self.net.branch_v(x).logits
        out = self.net(x)
        mean = (out.logits_v.float().softmax(1) + out.logits_a.float().softmax(1)) / 2
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()
