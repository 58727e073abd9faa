"""napari-octanet: OCTA-Net retinal vessel segmentation for OCT-angiography, as a napari plugin.

The Python API, for scripts and notebooks::

    import napari_octanet as octanet

    model = octanet.load_model("default")
    result = octanet.segment(image, model=model, pixel_size_um=9.87)
    result.mask, result.probability, result.notes, result.confidence, result.flags
    row = octanet.measure(result.mask, pixel_size_um=9.87)
    octanet.segment_folder("scans/", "results/", pixel_size_um=9.87)

Each function imports what it needs when called, so ``import napari_octanet`` stays cheap (no torch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .core.batch import BatchReport
    from .core.batch.scan import SegmentedScan
    from .core.checkpoint import LoadedModel

__version__ = "0.2.0"

__all__ = ["__version__", "load_model", "measure", "segment", "segment_folder"]


def load_model(name_or_path: str | os.PathLike[str] = "default", device: str = "auto") -> LoadedModel:
    """A model by registered name ('default', a bundled preset, a library model) or checkpoint file,
    loaded on ``device`` ('auto': CUDA, then Apple MPS, then the CPU)."""
    from .core.batch import model_file
    from .core.checkpoint import load_model as load_checkpoint_model
    from .core.devices import resolve_device

    return load_checkpoint_model(model_file(name_or_path), resolve_device(device).device)


def segment(
    image: np.ndarray, model: LoadedModel | None = None, pixel_size_um: float | None = None, **options: Any
) -> SegmentedScan:
    """Segment a 2D scan (or an (N, H, W) stack): the maps (``.probability``, the fine map, and ``.pixel``,
    ``.centerline``), the vessel mask (``.mask``, thresholded as ``octanet segment`` does by default),
    ``.notes`` on what was done, and which scans to check first, as ``octanet segment`` records them:
    ``.confidence``, the mask's predicted Dice in [0, 1], and ``.flags``, the artefacts found in the scan
    (motion, blink, low signal, featureless: each a ``Flag`` with ``.name`` and ``.reason``), computed by
    ``core.quality.assess`` with the model's own calibration (docs/confidence.md). For a stack both are
    lists, one item per slice. A featureless scan gets confidence 0.0 and the flag ``featureless``.

    ``model``: from :func:`load_model` (None: the default model, loaded for this call). ``pixel_size_um``:
    the scan's µm per pixel, so that the scan is resampled to the pixel size of the model's training
    scans of the nearest field of view and the maps back (``core.scale.target_pixel_size``).
    ``options``: ``threshold``, ``speck_size``, and ``core.inference.segment``'s options
    (``device``, ``tta``, ``mixed_precision``, ``batch_size``).
    """
    from .core.batch.scan import segment_scan

    return segment_scan(model or load_model(), image, pixel_size_um=pixel_size_um, assess_quality=True, **options)


def measure(mask: np.ndarray, pixel_size_um: float | None = None, scan: np.ndarray | None = None) -> dict[str, object]:
    """The whole-scan measures of a vessel mask (nonzero = vessel) as the measures CSV's columns to values.

    With ``pixel_size_um`` lengths are in mm, areas in mm² and diameters in µm (column names say so);
    without it, in pixels. With the ``scan`` the FAZ is found in it and measured too.
    """
    from .core.measure import measure_scan
    from .core.measure.regions import WHOLE

    measures = measure_scan(mask, scan=scan, pixel_size_um=pixel_size_um, faz=None if scan is None else "find")
    return next(row for row in measures.rows() if row["region"] == WHOLE)


def segment_folder(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], **options: Any
) -> BatchReport:
    """Segment the scans that ``inputs`` name (files, or folders of images) into ``out_dir``, as
    ``octanet segment`` does; ``options`` are ``core.batch.BatchOptions``' fields (``model``, ``device``,
    ``pixel_size_um``, ``fov_mm``, ``measure``, ``overwrite``...). Returns what was done and what failed, and
    each scan's confidence and flags (``.quality``; ``.to_check_first()`` lists the scans to review first)."""
    from .core.batch import BatchOptions
    from .core.batch import segment_folder as run_batch

    return run_batch(inputs, out_dir, BatchOptions(**options))
