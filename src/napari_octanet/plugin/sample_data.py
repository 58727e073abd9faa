"""npe2 sample data: a synthetic OCTA scan with its exact vessel label (no download, no real data)."""

from __future__ import annotations

from typing import Any

import numpy as np

LayerData = tuple[np.ndarray, dict[str, Any], str]


def synthetic_octa() -> list[LayerData]:
    """A 304x304 synthetic OCTA image (the ROSE-1 / OCTA-500 3M size) and its vessels as labels."""
    from napari_octanet.core.synthetic import synthetic_octa as generate

    image, label = generate()
    return [
        (image, {"name": "synthetic OCTA"}, "image"),
        # Not "... vessels": that is the name of the Segment vessels dock's result.
        (label.astype(np.uint8), {"name": "synthetic OCTA ground truth"}, "labels"),
    ]
