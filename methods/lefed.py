"""LeFeD: learning from the feature-level discrepancy of two differently trained decoders (``lefed.md``).

One V-Net encoder feeds decoder A (transposed-conv up-sampling, Dice loss, deep supervision through
five side heads weighted 0.8/0.6/0.4/0.2/0.1 from the full-resolution head on u8 to the bottleneck
head on x5) and decoder B (trilinear up-sampling, cross-entropy). The unsupervised loss is the MSE
between the two softmax outputs; all weights are 1 (eqs. 1-4). Each batch is learned in ``t`` passes:
pass 1 without feedback, pass k > 1 with ``lambda * encode(F^A_s - F^B_s)`` of pass k - 1, detached,
added to the encoder's stage output ``x_s`` (after its conv block, before down-sampling / the bottleneck
dropout) for every selected scale s (eq. 5). Scale s is decoder stage ``[x5, u5, u6, u7, u8][5 - s]``
and encoder stage ``x_s``: S1 = u8 -> x1 (full resolution), ..., S4 = u5 -> x4, S5 = bottleneck -> x5.

``variant: official`` reproduces ``maxwell0027/LeFeD`` at ca980a2 where it differs from the paper:

- ``b_gating: true``: B's bottleneck is ``x5 + x5 * sigmoid(x5)`` and its skips ``x_k`` are replaced by
  ``x_k * sigmoid(u^A)`` (A's detached up-block outputs); the paper describes no gating.
- ``different_losses: false``: Dice on both decoders (the paper: CE on B).
- ``mse_rows: all``: the MSE covers all rows, labeled ones included (the paper: unlabeled data).
- ``encoding: b_minus_a`` (the paper: A - B) over ``scales: [1, 2, 3, 4, 5]`` (the bottleneck term is
  non-zero only through the gating).
- 96^3 training patches (:meth:`LeFeD.run_defaults`; the paper: 112x112x80 on LA).
- Shared by both variants because the paper is silent: one optimiser step per pass
  (``steps_per_batch: per_pass``, t steps per outer iteration), the x0.1 / 2,500 outer-iteration step
  schedule (harness default), 15,000 outer iterations, dropout 0.3 on x5 and 0.5 before each head,
  prediction from decoder A without feedback (``predict_from: mean_logits`` gives the softmax of the
  mean of A's and B's logits, the code before Feb 2024).

Choices of this suite (ours):

- Paper variant: no gating; feedback at the encoder stage outputs of S1-S4 (eq. 5's ``x + ...`` read as
  schematic; the S5 term is identically 0 without gating).
- ``encoding: entropy``: ``lambda * H`` with ``H = -sum_c p_c log p_c / log K`` of
  ``p = (p_A + p_B) / 2`` per voxel, average-pooled by ``2^(s-1)`` to scale s and broadcast over channels.
- ``feedback: false`` (IL off) runs one pass per batch (``il_off_steps: t`` runs t passes without feedback).
- ``ablation``: the rows of Table IV as bundles of ``feedback``, ``scales``, ``different_losses`` and
  ``deep_supervision`` applied on top of the variant; ``baseline`` is the LeFeD network (two decoders,
  MSE consistency) with IL, DL and DS off.
- ``steps_per_batch: once``: back-propagate the mean of the t pass losses in one optimiser step.
- Side heads run on the labeled rows only (their loss uses nothing else); their widths scale with
  ``filters``. With ``mse_rows: unlabeled`` and no unlabeled rows the MSE term is 0.
- Logged terms are means over the passes of a batch: ``loss``, ``dice_a``, ``ce_b`` (or ``dice_b`` when
  DL is off), ``ds`` (only when DS is on), ``mse``, and ``feedback_abs`` (mean |d_s| over the selected
  scales of the fed-back tensors, only when some pass receives feedback). Switched-off terms are absent.

The discrepancy weight is the option ``lambda``; the Python field is ``lambda_`` (``lambda`` is a
keyword); configs and ``--set`` spell it ``lambda``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Batch, DatasetInfo, Method, NonNegative, Options, PositiveInt, Probability, Range, StepContext
from .losses import cross_entropy, dice_loss, softmax_mse
from .nets.lefed import LeFeDNet
from .nets.vnet import DecoderOutput
from .registry import register

Encoding = Literal["a_minus_b", "b_minus_a", "abs", "entropy"]
Ablation = Literal["baseline", "IL", "IL+DL", "IL+DS", "DL+DS+S1", "DL+DS+S1+S2", "DL+DS+S1+S2+S3", "full"]

#: Deep-supervision weights of the side heads on ``[x5, u5, u6, u7, u8]`` (0.8 on the full-resolution head).
DS_WEIGHTS = (0.1, 0.2, 0.4, 0.6, 0.8)
ALL_SCALES = (1, 2, 3, 4, 5)


@dataclass
class LeFeDOptions(Options):
    """``t``: passes per batch (T_fb); ``lambda_``: discrepancy weight; ``scales``: feedback scales
    (1 = full resolution .. 5 = bottleneck); ``ablation``: a Table IV row applied on top of the variant
    (``None``: the variant's own switches); the rest as named in ``lefed.md`` sections 3-7."""

    variant: Literal["paper", "official"] = "paper"
    ablation: Ablation | None = None
    t: PositiveInt = 3
    lambda_: NonNegative = 1e-3
    feedback: bool = True
    scales: tuple[Annotated[int, Range(1, 5)], ...] = (1, 2, 3, 4)
    encoding: Encoding = "a_minus_b"
    different_losses: bool = True
    deep_supervision: bool = True
    b_gating: bool = False
    mse_rows: Literal["unlabeled", "all"] = "unlabeled"
    steps_per_batch: Literal["per_pass", "once"] = "per_pass"
    il_off_steps: Literal[1, "t"] = 1
    predict_from: Literal["a", "mean_logits"] = "a"
    encoder_dropout: Probability = 0.3
    decoder_dropout: Probability = 0.5

    def __post_init__(self) -> None:
        if not self.scales or len(set(self.scales)) != len(self.scales) or not set(self.scales) <= set(ALL_SCALES):
            raise ValueError(f"invalid value {list(self.scales)} for 'scales'; expected distinct scales from 1..5")


def _row(il: bool, dl: bool, ds: bool, scales: tuple[int, ...] = (1, 2, 3, 4)) -> dict[str, Any]:
    row: dict[str, Any] = {"feedback": il, "different_losses": dl, "deep_supervision": ds}
    return row | {"scales": scales} if il else row


#: Table IV: which of IL (feedback), DL (CE on B) and DS are on, and the feedback scales.
ABLATIONS: dict[str | None, dict[str, Any]] = {
    None: {},
    "baseline": _row(False, False, False),
    "IL": _row(True, False, False),
    "IL+DL": _row(True, True, False),
    "IL+DS": _row(True, False, True),
    "DL+DS+S1": _row(True, True, True, (1,)),
    "DL+DS+S1+S2": _row(True, True, True, (1, 2)),
    "DL+DS+S1+S2+S3": _row(True, True, True, (1, 2, 3)),
    "full": _row(True, True, True),
}

VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"b_gating": False, "different_losses": True, "mse_rows": "unlabeled", "encoding": "a_minus_b",
              "scales": (1, 2, 3, 4)},
    "official": {"b_gating": True, "different_losses": False, "mse_rows": "all", "encoding": "b_minus_a",
                 "scales": ALL_SCALES},
}


def encode(
    stages_a: Sequence[Tensor],
    stages_b: Sequence[Tensor],
    logits_a: Tensor,
    logits_b: Tensor,
    encoding: Encoding,
    lam: float,
    scales: Sequence[int],
) -> list[Tensor | None]:
    """The encoder additions ``[x1, ..., x5]`` for the next pass, detached (``lefed.md`` section 7).

    ``stages_*``: a pass's decoder stage features ``[x5, u5, u6, u7, u8]``; scale s uses
    ``stages[5 - s]`` (``f * 2^(s-1)`` channels at ``1 / 2^(s-1)`` resolution). ``logits_*``:
    ``(N, K, X, Y, Z)``, used by ``entropy`` only. Unselected scales get ``None`` (nothing is added).
    """
    out: list[Tensor | None] = [None] * 5
    with torch.no_grad():
        if encoding == "entropy":
            p = (logits_a.float().softmax(1) + logits_b.float().softmax(1)) / 2
            entropy = -torch.special.xlogy(p, p).sum(1, keepdim=True) / math.log(p.shape[1])
        for s in scales:
            fa, fb = stages_a[5 - s], stages_b[5 - s]
            if encoding == "a_minus_b":
                d = fa - fb
            elif encoding == "b_minus_a":
                d = fb - fa
            elif encoding == "abs":
                d = (fa - fb).abs()
            else:
                d = F.avg_pool3d(entropy, 2 ** (s - 1)).to(fa.dtype).expand_as(fa)
            out[s - 1] = lam * d
    return out


def deep_supervision_loss(side_logits: Sequence[Tensor], label: Tensor) -> Tensor:
    """``sum_i w_i Dice(softmax(h_i)[:, 1], y)`` over the side heads on ``[x5, u5, u6, u7, u8]``.

    ``side_logits``: five ``(L, K, X, Y, Z)`` full-resolution maps of the labeled rows; ``label``: ``(L, X, Y, Z)``.
    """
    return sum(w * dice_loss(h.float().softmax(1)[:, 1], label) for w, h in zip(DS_WEIGHTS, side_logits))


@register
class LeFeD(Method):
    name = "lefed"
    paper = "Zeng et al., Discrepancy Matters: Learning from Inconsistent Decoder Features, arXiv 2309.14819 (2023)"
    label = "LeFeD"
    Options = LeFeDOptions
    presets: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {"variant": VARIANTS, "ablation": ABLATIONS}
    options: LeFeDOptions

    def __init__(self, options: LeFeDOptions, in_channels: int = 1, num_classes: int = 2, filters: int = 16) -> None:
        super().__init__(options, in_channels, num_classes, filters)
        self.net = LeFeDNet(in_channels, num_classes, filters, options.encoder_dropout, options.decoder_dropout)

    @classmethod
    def run_defaults(cls, options: Options, dataset: DatasetInfo) -> dict[str, Any]:
        assert isinstance(options, LeFeDOptions)
        defaults: dict[str, Any] = {"iterations": 15000, "labeled_bs": 2, "unlabeled_bs": 2}
        return defaults | ({"patch": [96, 96, 96]} if options.variant == "official" else {})

    @property
    def passes(self) -> int:
        """Forward passes per batch: ``t`` with feedback (or ``il_off_steps: t``), else 1."""
        o = self.options
        return o.t if o.feedback or o.il_off_steps == "t" else 1

    def segmenter(self) -> nn.Module:
        return self.net

    def training_step(self, ctx: StepContext, batch: Batch) -> None:
        o = self.options
        additions: list[Tensor | None] | None = None
        per_pass: list[dict[str, Tensor]] = []
        fed_back: list[Tensor] = []
        for k in range(self.passes):
            a, b = self.net(batch.image, additions, gating=o.b_gating)
            side = self.net.side_heads([s[: batch.labeled_bs] for s in a.stages]) if o.deep_supervision else None
            terms = self._losses(a.logits.float(), b.logits.float(), side, batch.label)
            if o.steps_per_batch == "per_pass":
                ctx.step(terms["loss"], terms=terms)  # logged as the mean over the passes
            per_pass.append(terms)
            if additions is not None:
                fed_back.append(torch.stack([d.abs().mean() for d in additions if d is not None]).mean())
            if o.feedback and k + 1 < self.passes:
                additions = encode(a.stages, b.stages, a.logits, b.logits, o.encoding, o.lambda_, o.scales)
        if o.steps_per_batch == "once":
            mean = {key: torch.stack([t[key] for t in per_pass]).mean() for key in per_pass[0]}
            ctx.step(mean["loss"], terms=mean)
        if fed_back:
            ctx.log({"feedback_abs": torch.stack(fed_back).mean().float()})

    def _losses(
        self, logits_a: Tensor, logits_b: Tensor, side: list[Tensor] | None, label: Tensor
    ) -> dict[str, Tensor]:
        """Eqs. 1-4 on one pass: ``(N, K, X, Y, Z)`` logits of A and B, side-head logits of the labeled rows."""
        o, n = self.options, label.shape[0]
        terms = {"dice_a": dice_loss(logits_a[:n].softmax(1)[:, 1], label)}
        if o.different_losses:
            terms["ce_b"] = cross_entropy(logits_b[:n], label)
        else:
            terms["dice_b"] = dice_loss(logits_b[:n].softmax(1)[:, 1], label)
        if side is not None:
            terms["ds"] = deep_supervision_loss(side, label)
        first = n if o.mse_rows == "unlabeled" else 0
        rows_a, rows_b = logits_a[first:], logits_b[first:]
        terms["mse"] = softmax_mse(rows_a, rows_b) if len(rows_a) else logits_a.new_zeros(())
        return {"loss": sum(terms.values()), **terms}

    def training_forward(self, x: Tensor) -> tuple[DecoderOutput, DecoderOutput, list[Tensor]]:
        """Both decoders and the side heads, one pass without feedback."""
        a, b = self.net(x, gating=self.options.b_gating)
        return a, b, self.net.side_heads(a.stages)

    def feature_maps(self, x: Tensor) -> dict[str, Tensor]:
        """The last decoder block's output of A ("Dice") and B ("CE"), ``(N, filters, X, Y, Z)`` (Fig. 6)."""
        a, b = self.net(x, gating=self.options.b_gating)
        return {"A (Dice)": a.features, "B (CE)": b.features}

    def predict(self, x: Tensor) -> Tensor:
        """Logits of decoder A (B and the side heads are not run), or the mean of A's and B's logits;
        one pass without feedback."""
        if self.options.predict_from == "a":
            return self.net.decoder_a(self.net.encoder(x)).logits
        a, b = self.net(x, gating=self.options.b_gating)
        return (a.logits + b.logits) / 2
