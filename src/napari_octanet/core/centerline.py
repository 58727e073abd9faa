"""Centerline-level labels derived from pixel-level vessel labels.

Where a dataset gives only a pixel-level (full-width) vessel label, the centerline decoder is
trained against its one-pixel-wide skeleton.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize


def centerline_from_label(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide skeleton (8-connected) of a 2D vessel mask, as a boolean array."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(
            f"centerline_from_label takes one 2D mask, got shape {mask.shape}; call it once per slice of a stack"
        )
    return skeletonize(mask.astype(bool))
