"""Volume operations of the CoraNet-lineage pipelines, shared by FUSSNet and BCP (used by no other method):
the fixed centre crop of ``grant-jpg/FUSSNet`` ``dataset/LeftAtrium.py`` / ``dataset/pancreas.py`` and the
largest-connected-component filter of BCP's pseudo-labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor


def coranet_padding(shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """Zero padding per side of the CoraNet crops: if any axis has ``s <= p``, every axis gets
    ``max((p - s) // 2 + 1, 0)`` (``+1``, where the UA-MT crops of ``protocols.md`` section 6 use ``+3``)."""
    if any(s <= p for s, p in zip(shape, patch)):
        return tuple(max((p - s) // 2 + 1, 0) for s, p in zip(shape, patch))
    return (0,) * len(shape)


def centre_crop(array: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    """CoraNet ``CenterCrop``: zero-pad per :func:`coranet_padding`, then cut ``patch`` at offsets
    ``round((s' - p) / 2)`` (Python rounding, halves to even). ``array``: (X, Y, Z); returns a new array."""
    pad = coranet_padding(array.shape, patch)
    if any(pad):
        array = np.pad(array, [(q, q) for q in pad])
    start = [round((s - p) / 2) for s, p in zip(array.shape, patch)]
    return np.array(array[tuple(slice(o, o + p) for o, p in zip(start, patch))])


def largest_component(mask: np.ndarray, connectivity: int = 3) -> np.ndarray:
    """The largest connected component of a boolean (X, Y, Z) mask (ties: the lowest label, as
    ``np.argmax`` of the official ``bincount``); an empty mask stays empty.

    ``connectivity`` 1, 2, 3: 6-, 18-, 26-neighbourhood (``skimage.measure.label``'s convention).
    """
    labels, count = ndimage.label(mask, ndimage.generate_binary_structure(3, connectivity))
    if count == 0:
        return mask.astype(bool)
    return labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1


def largest_components(masks: Tensor, connectivity: int = 3) -> Tensor:
    """:func:`largest_component` of every sample of ``masks`` (N, X, Y, Z); int64 on the input's device."""
    kept = [largest_component(m, connectivity) for m in masks.detach().cpu().numpy().astype(bool)]
    return torch.from_numpy(np.stack(kept)).to(device=masks.device, dtype=torch.int64)
