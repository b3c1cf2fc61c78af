"""Largest-connected-component post-processing (``protocols.md`` section 9, switch ``lcc``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_connected_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest foreground component of ``mask`` (full connectivity: 26 in 3D).

    Ties go to the component with the lowest label (first in C order); an empty mask stays empty.
    Returns a new bool array of the same shape.
    """
    mask = np.asarray(mask) != 0
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    if n <= 1:
        return mask
    return labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
