"""Sliding-window inference with uniform averaging (``protocols.md`` section 8) and the one segmentation
pipeline (:class:`Inferer`) that validation, evaluation and the figures share."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config.schema import RunConfig
from ..runtime import autocast
from .postprocess import largest_connected_component

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class Inferer:
    """How a run turns a volume into a mask: sliding windows of ``window`` every ``strides`` voxels,
    ``batch_size`` windows per forward on ``device``, under the run's precision ``amp`` (logits are cast to
    float32 before the softmax), argmax and, with ``lcc``, the largest connected component (26-connected).

    Built once from a run's configuration (:meth:`from_config`) and used by held-out validation, ``sslbench
    evaluate`` and ``sslbench predict``, so the scored, selected and drawn masks are the same.
    """

    window: Triple
    strides: Triple
    batch_size: int = 1
    lcc: bool = False
    amp: str = "off"
    device: torch.device | str = "cpu"

    @classmethod
    def from_config(cls, config: RunConfig, device: torch.device) -> Inferer:
        """``config.eval``'s window, strides, batch size and LCC with the run's ``amp``."""
        e = config.eval
        return cls(tuple(e.window), tuple(e.strides), e.batch_size, e.lcc, config.amp, device)  # type: ignore[arg-type]

    def probabilities(self, predict: Callable[[Tensor], Tensor], volume: np.ndarray | Tensor) -> np.ndarray:
        """``(K, X, Y, Z)`` float32 probabilities of :func:`sliding_window`; ``predict`` runs in eval mode."""
        def forward(x: Tensor) -> Tensor:
            with autocast(self.amp, self.device):
                return predict(x).float()

        return sliding_window(forward, volume, self.window, self.strides, self.batch_size, self.device)

    def segment(self, predict: Callable[[Tensor], Tensor], volume: np.ndarray | Tensor) -> np.ndarray:
        """Foreground mask ``(X, Y, Z)`` bool of ``volume`` ``(X, Y, Z)`` or ``(C, X, Y, Z)``."""
        mask = predict_mask(self.probabilities(predict, volume))
        return largest_connected_component(mask) if self.lcc else mask


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets along one axis of (padded) length ``size >= window``: ``min(i * stride, size - window)``
    for ``i = 0 .. ceil((size - window) / stride)``; the last window is clamped to the end."""
    n = math.ceil((size - window) / stride) + 1
    return [min(i * stride, size - window) for i in range(n)]


def sliding_window(
    predict: Callable[[Tensor], Tensor],
    volume: np.ndarray | Tensor,
    window: Sequence[int],
    strides: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class probabilities of a whole volume from overlapping windows.

    Args:
        predict: maps a batch ``(B, C, *window)`` to logits ``(B, K, *window)``; the caller puts the
            network in eval mode. Runs under :func:`torch.inference_mode`.
        volume: ``(X, Y, Z)`` or ``(C, X, Y, Z)`` intensities.
        window, strides: window size and step along (X, Y, Z), in voxels.
        batch_size: windows per ``predict`` call; the result equals one-at-a-time inference up to
            floating-point reordering inside ``predict``.
        device: where windows are predicted and probabilities accumulated.

    Returns:
        ``(K, X, Y, Z)`` float32 probabilities averaged over the windows covering each voxel: the softmax
        over channels, or for a single-channel head the sigmoid ``p`` returned as ``[1 - p, p]`` (so
        ``p1 > p0`` is exactly ``p > 0.5``; :func:`predict_mask` serves both heads).

    Axes shorter than the window are zero-padded, floor((w - S) / 2) before and the rest after; the padding
    is removed from the result.
    """
    window, strides = _triple(window, "window"), _triple(strides, "strides")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # Cached volumes are read-only NumPy arrays: copy rather than alias them.
    x = torch.tensor(volume, dtype=torch.float32) if isinstance(volume, np.ndarray) else volume.float()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"volume must be (X, Y, Z) or (C, X, Y, Z), got shape {tuple(x.shape)}")
    shape = x.shape[1:]
    pads = [(max(w - s, 0) // 2, max(w - s, 0) - max(w - s, 0) // 2) for s, w in zip(shape, window)]
    x = F.pad(x, [p for pair in reversed(pads) for p in pair]).to(device)
    padded = x.shape[1:]
    corners = list(itertools.product(*(window_starts(s, w, st) for s, w, st in zip(padded, window, strides))))

    score: Tensor | None = None
    count = coverage(padded, window, strides, x.device)
    with torch.inference_mode():
        for i in range(0, len(corners), batch_size):
            boxes = [tuple(slice(c, c + w) for c, w in zip(corner, window)) for corner in corners[i : i + batch_size]]
            logits = predict(torch.stack([x[(slice(None), *box)] for box in boxes]))
            if logits.ndim != 5 or logits.shape[0] != len(boxes) or tuple(logits.shape[2:]) != window:
                raise ValueError(f"predict returned shape {tuple(logits.shape)} for {len(boxes)} windows of {window}")
            probs = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
            if score is None:
                score = torch.zeros((probs.shape[1], *padded), device=x.device)
            for box, p in zip(boxes, probs.float()):
                score[(slice(None), *box)] += p
        score /= count
        score = score[(slice(None), *(slice(before, before + s) for (before, _), s in zip(pads, shape)))]
        if score.shape[0] == 1:
            score = torch.cat([1 - score, score])
        return score.cpu().numpy()


def coverage(shape: Sequence[int], window: Triple, strides: Triple, device: str | torch.device = "cpu") -> Tensor:
    """Windows covering each voxel of a (padded) volume ``shape`` (X, Y, Z), float32: the outer product of the
    per-axis counts (the window grid is a product of per-axis positions), equal to adding 1 per window."""
    counts = []
    for size, w, st in zip(shape, window, strides):
        axis = torch.zeros(size)
        for start in window_starts(size, w, st):
            axis[start : start + w] += 1
        counts.append(axis)
    return (counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :]).to(device)


def predict_mask(probs: np.ndarray) -> np.ndarray:
    """Foreground mask ``(X, Y, Z)`` bool from 2-class probabilities ``(2, X, Y, Z)``: argmax, ties to background."""
    if probs.shape[0] != 2:
        raise ValueError(f"expected 2-class probabilities (2, X, Y, Z), got shape {probs.shape}")
    return probs[1] > probs[0]


def _triple(values: Sequence[int], name: str) -> Triple:
    triple = tuple(int(v) for v in values)
    if len(triple) != 3 or min(triple) < 1:
        raise ValueError(f"{name} must be three positive integers, got {values!r}")
    return triple  # type: ignore[return-value]
