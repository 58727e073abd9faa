"""*Save results*: the Segment dock writes its last result as ``octanet segment`` does, through the core's writer.

Into the folder the user picks go ``NAME_probability.tif`` (float32), ``NAME_vessels.png`` (0/255;
a stack: ``NAME_vessels.tif``) and ``NAME_segment.json``, the core's record of how they were made
(the model by content, threshold, speck size, TTA, pixel size, and the source file where the layer
was read from one) with the scan's confidence and flags (a stack's: per slice, under ``slices``),
NAME being the image layer's. The dock asks before replacing a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from napari.layers import Layer

if TYPE_CHECKING:
    from napari_octanet.core.batch import ResultPaths

    from ._segment_results import SegmentResult


def source_file(layer: Layer) -> Path | None:
    """The one file the layer was read from, if there is one (a stack read from a folder has many)."""
    files = layer.metadata.get("files")
    if isinstance(files, list):
        return Path(files[0]) if len(files) == 1 else None
    path = layer.source.path
    return Path(path) if path and Path(path).is_file() else None


def result_paths(result: SegmentResult, folder: Path) -> ResultPaths:
    """Where the result's files go in ``folder``, named as a batch names them."""
    from napari_octanet.core.batch import ResultPaths

    return ResultPaths.at(folder, result.placement.source_name, stack=result.segmentation.fine.ndim > 2)


def files_in_the_way(result: SegmentResult, folder: Path) -> list[Path]:
    """The result's files that exist in ``folder`` already."""
    paths = result_paths(result, folder)
    return [path for path in (*paths.outputs(), paths.record) if path.exists()]


def save_result(result: SegmentResult, folder: Path) -> ResultPaths:
    """Write the result's probability map, mask and record into ``folder``, replacing what is there.
    An OSError or ValueError says what failed."""
    from napari_octanet.core.batch import write_result

    mask = result.vessel_mask()
    write_result(folder, result.placement.source_name, result.segmentation.fine, mask, _record(result), overwrite=True)
    return result_paths(result, folder)


def _record(result: SegmentResult) -> Mapping[str, object]:
    """The core's result record and the scan's quality; a layer read from no file (an array, a stack of many
    files) has no source."""
    from napari_octanet.core.batch import BatchOptions, result_record, result_settings
    from napari_octanet.core.batch.records import PIXEL_SIZE_KEY

    made = result.made_with
    options = BatchOptions(threshold=result.threshold, speck_size=result.speck_size, tta=made.tta)
    settings = result_settings(options, result.threshold, made.checkpoint)
    pixel_size_um = result.segmentation.pixel_size_um
    if made.source is not None and made.source.is_file():
        return {**result_record(made.source, settings, pixel_size_um), **_quality_record(result)}
    return {**settings, PIXEL_SIZE_KEY: pixel_size_um, **_quality_record(result)}


def _quality_record(result: SegmentResult) -> dict[str, object]:
    """A scan's ``confidence`` and ``flags`` as ``octanet segment`` records them; a stack's per slice."""
    if not result.qualities:
        return {}
    if not result.is_stack:
        return result.qualities[0].to_dict()
    return {"slices": [quality.to_dict() for quality in result.qualities]}
