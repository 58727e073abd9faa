"""Inference: a generator that yields progress per forward pass and returns the three maps.

GUIs wrap :func:`iter_segment` in a worker thread and stop it at any yield; scripts call
:func:`segment`, which runs the same generator to the end. A pass is a batch of slices, one tile
of a large slice, or one view of test-time augmentation, so a stop never waits for a whole scan.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from .allocator import tune_allocator
from .checkpoint import LoadedModel
from .devices import DeviceChoice, precision_name, reduced_precision, resolve_device, uses_fast_precision
from .measure.units import check_pixel_size
from .network import OctaNet
from .preprocess import as_image_stack, featureless_slices, normalise, pad_to_multiple, padded_size
from .progress import Progress, run_to_end
from .scale import resampled_shape, target_pixel_size
from .training.settings import drew_turned_views

#: The maps a score or a figure can be taken from: SRS output, either coarse map, or their max.
MAP_CHOICES = ("fine", "pixel", "centerline", "coarse")
#: The 8 rotations and flips of a square, as (quarter turns, mirrored) pairs.
DIHEDRAL_VIEWS = tuple((turns, mirrored) for turns in range(4) for mirrored in (False, True))
#: The most (padded) pixels one forward pass takes, all slices of a batch together. Larger slices
#: run as overlapping tiles of TILE_SIZE, of which only the part at least TILE_MARGIN from a tile's
#: edge is kept: the bundled model then peaks near 1.5 GB whatever the image size (docs/benchmarks.md).
MAX_PIXELS_PER_PASS = 1280 * 1280
TILE_SIZE = 1280
TILE_MARGIN = 128


@dataclass
class Segmentation:
    """Float32 probability maps with the input's shape (an RGB axis dropped)."""

    pixel: np.ndarray
    centerline: np.ndarray
    fine: np.ndarray
    device: str
    notes: list[str] = field(default_factory=list)
    #: Indices of the slices that held one value only: their maps are empty (one of the notes says so).
    featureless: list[int] = field(default_factory=list)
    #: How the network computed: "float32", "bfloat16 autocast" or "float16 autocast".
    precision: str = "float32"
    #: The scan's pixel size (µm) as given, None where nobody knew it.
    pixel_size_um: float | None = None
    #: The pixel size (µm) the network saw, where the scan was resampled for it; None where it was not.
    model_pixel_size_um: float | None = None


def iter_segment(
    model: LoadedModel | OctaNet,
    image: np.ndarray,
    *,
    device: str | torch.device = "auto",
    batch_size: int = 4,
    rgb: bool | None = None,
    mixed_precision: bool | None = None,
    prescaled: bool = False,
    tta: bool = False,
    pixel_size_um: float | None = None,
) -> Generator[Progress, None, Segmentation]:
    """Segment a 2D image, an RGB image or an (N, H, W) stack, slice batch by slice batch.

    Images are checked and scaled first (see :mod:`.preprocess`); each batch is padded to a
    multiple of 32 and cropped back. Inference runs in the device's fast reduced precision where it
    has one (float16 on CUDA, bfloat16 on CPUs with AMX: ``devices.fast_precision``) unless
    ``mixed_precision`` is False; on a CUDA out-of-memory error the batch is halved, and at a
    batch of one the job moves to the CPU; each step is reported in ``notes`` and a Progress.
    ``prescaled`` says the image is already scaled to [0, 1] (as training images are), so its own
    min and max must not stretch it again. ``tta`` (test-time augmentation) averages the maps of
    the 8 rotations and flips of each slice, each turned back: 8 times slower, and on the OCTA-500
    val scans about 0.005-0.01 Dice better. ``pixel_size_um`` (µm per pixel) lets a scan outside the
    pixel sizes the model was trained at be resampled into them, and the maps back to its grid
    (``scale.target_pixel_size``); the notes say so.
    """
    network = model.network if isinstance(model, LoadedModel) else model
    pixel_size_um = check_pixel_size(pixel_size_um)
    stack, was_2d = as_image_stack(image, rgb=rgb)
    blank = featureless_slices(stack)
    stack = stack.astype(np.float32, copy=False) if prescaled else normalise(stack)
    grid = stack.shape[-2:]
    model_pixel = _model_pixel_size(model, pixel_size_um, grid[-1])
    if model_pixel is not None:
        stack = resampled(stack, resampled_shape(grid, pixel_size_um, model_pixel))  # type: ignore[arg-type]
    choice = resolve_device(device)
    runner = _BatchRunner(network, choice, batch_size, mixed_precision, tta)
    if tta and isinstance(model, LoadedModel) and not drew_turned_views(model.info.provenance):
        runner.notes.append(UNTURNED_TTA_NOTE)
    runner.fit_batch_to(stack.shape[-2:])
    total = stack.shape[0]
    passes = runner.passes_per_slice(stack.shape[-2:])
    outputs = np.empty((3, *stack.shape), dtype=np.float32)
    yield Progress(0, total * passes, f"segmenting {total} slice(s) on {choice}")
    start = 0
    while start < total:
        stop = min(start + runner.batch_size, total)
        try:
            outputs[:, start:stop] = yield from _batch_progress(runner, stack[start:stop], start, total, passes)
        except (torch.cuda.OutOfMemoryError, AcceleratorOutOfMemory):
            note = runner.back_off()
            yield Progress(start * passes, total * passes, note)
            continue
        start = stop
        yield Progress(start * passes, total * passes, f"segmented {start}/{total} on {runner.device}")
    if model_pixel is not None:
        outputs = resampled(outputs.reshape(-1, *outputs.shape[-2:]), grid).reshape(3, total, *grid)
        runner.notes.append(resampling_note(pixel_size_um, model_pixel))  # type: ignore[arg-type]
    if blank:
        outputs[:, blank] = 0.0
        runner.notes.append(featureless_note(blank, was_2d))
    pixel, centerline, fine = (o[0] if was_2d else o for o in outputs)
    precision = precision_name(runner.device, runner.mixed_precision)
    return Segmentation(
        pixel, centerline, fine, str(runner.device), runner.notes, blank, precision, pixel_size_um, model_pixel
    )


def _model_pixel_size(model: LoadedModel | OctaNet, pixel_size_um: float | None, width_px: int) -> float | None:
    """The pixel size to resample the scan to for this model, or None to leave it as it is."""
    if pixel_size_um is None or not isinstance(model, LoadedModel):
        return None
    return target_pixel_size(pixel_size_um, width_px, model.info.provenance)


def resampled(planes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) float planes resized to ``shape``: bilinear, antialiased where they shrink."""
    if tuple(planes.shape[-2:]) == tuple(shape):
        return planes
    shrink = shape[0] < planes.shape[-2] or shape[1] < planes.shape[-1]
    tensor = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[:, None]
    out = torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
    return out[:, 0].numpy()


def resampling_note(pixel_size_um: float, model_pixel_um: float) -> str:
    """What a user is told when a scan was resampled for the model."""
    return (
        f"the scan ({pixel_size_um:.3g} µm per pixel) was resampled to {model_pixel_um:.3g} µm per pixel, the size "
        "of the model's training scans of the nearest field of view, and the maps back to the scan's pixels"
    )


#: Why averaging rotated and flipped views can hurt: shown when TTA is asked of such a model.
UNTURNED_TTA_NOTE = (
    "this model was last trained without flips and quarter turns, so the rotated and flipped views that "
    "test-time augmentation averages lower its Dice (docs/training.md: No augmentation); leave TTA off with it"
)


def featureless_note(blank: list[int], was_2d: bool) -> str:
    """What a user is told about featureless slices (``was_2d``: the one image of a 2D input)."""
    where = "the image is" if was_2d else f"slice(s) {', '.join(map(str, blank))} are"
    return f"{where} featureless (one value everywhere): no vessels; check that the right file or channel was opened"


def _batch_progress(
    runner: _BatchRunner, batch: np.ndarray, start: int, total: int, passes: int
) -> Generator[Progress, None, np.ndarray]:
    """Run one batch, yielding a Progress (in slice-passes) after each forward pass but its last."""
    work = runner.iter_run(batch)
    slices = f"slice {start + 1}" if len(batch) == 1 else f"slices {start + 1}-{start + len(batch)}"
    done = 0
    while True:
        try:
            done += next(work)
        except StopIteration as finished:
            return finished.value
        if done < len(batch) * passes:
            message = f"{slices} of {total}: {done} of {len(batch) * passes} passes"
            yield Progress(start * passes + done, total * passes, message)


def segment(model: LoadedModel | OctaNet, image: np.ndarray, **options: object) -> Segmentation:
    """Run :func:`iter_segment` to the end in the calling thread."""
    return run_to_end(iter_segment(model, image, **options))  # type: ignore[arg-type]


def tile_windows(length: int, tile: int, margin: int) -> list[tuple[slice, slice]]:
    """Cover ``range(length)`` with (tile, inner part kept) pairs of slices along one axis.

    The inner parts partition the axis; each lies at least ``margin`` from its tile's edges except
    at the image's own border, so the network's padding at a tile edge never reaches a kept pixel.
    """
    if length <= tile:
        return [(slice(0, length), slice(0, length))]
    step = tile - 2 * margin
    windows = []
    for start in range(0, length, step):
        stop = min(start + step, length)
        first = min(max(start - margin, 0), length - tile)
        windows.append((slice(first, first + tile), slice(start, stop)))
        if stop == length:
            break
    return windows


#: How torch's MPS backend words an out-of-memory error (a plain RuntimeError, unlike CUDA's).
MPS_OUT_OF_MEMORY = "MPS backend out of memory"


class AcceleratorOutOfMemory(RuntimeError):
    """A GPU (Apple MPS) ran out of memory: back off as for CUDA's OutOfMemoryError."""


def _is_out_of_memory(error: RuntimeError) -> bool:
    text = str(error)
    return "DefaultCPUAllocator" in text or "not enough memory" in text or "out of memory" in text.lower()


def _fits_one_pass(height: int, width: int) -> bool:
    """Whether a slice of this size runs whole rather than in tiles (MAX_PIXELS_PER_PASS)."""
    return padded_size(height) * padded_size(width) <= MAX_PIXELS_PER_PASS


#: Hashable summary of a module's weights: storage and in-place version of every parameter and buffer.
WeightsVersion = tuple[tuple[int, int], ...]
_PREPARED: weakref.WeakKeyDictionary[OctaNet, tuple[torch.device, WeightsVersion, OctaNet]] = (
    weakref.WeakKeyDictionary()
)
_PREPARED_LOCK = threading.Lock()


def _weights_version(network: OctaNet) -> WeightsVersion:
    """Changes whenever a weight or running statistic is replaced or changed in place (optimiser steps, loading)."""
    tensors = itertools.chain(network.parameters(), network.buffers())
    return tuple((tensor.data_ptr(), tensor._version) for tensor in tensors)


def prepared_network(network: OctaNet, device: torch.device) -> OctaNet:
    """The inference copy of ``network`` on ``device`` (see :mod:`.network.fused`), made once per weights.

    Cached weakly on the module, so repeated calls on a loaded model cost nothing; a network being
    trained gets a fresh copy of its current weights whenever they changed. ``network`` itself is
    never moved, switched to eval mode or otherwise changed.
    """
    from .network.fused import inference_copy

    version = _weights_version(network)
    with _PREPARED_LOCK:
        cached = _PREPARED.get(network)
        if cached is not None and cached[0] == device and cached[1] == version:
            return cached[2]
        prepared = inference_copy(network, device)
        _PREPARED[network] = (device, version, prepared)
        return prepared


class _BatchRunner:
    """Runs padded batches through the inference copy of the network, backing off on CUDA OOM."""

    def __init__(
        self, network: OctaNet, choice: DeviceChoice, batch_size: int, mixed_precision: bool | None, tta: bool = False
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        tune_allocator()
        self.source = network
        self.device = choice.device
        self.network = prepared_network(network, self.device)
        self.batch_size = batch_size
        self.mixed_precision = uses_fast_precision(mixed_precision)
        self.notes: list[str] = []
        self.views = DIHEDRAL_VIEWS if tta else DIHEDRAL_VIEWS[:1]

    def fit_batch_to(self, shape: tuple[int, int]) -> None:
        """Shrink the batch so that one pass stays within MAX_PIXELS_PER_PASS (at least one slice)."""
        area = min(padded_size(shape[0]) * padded_size(shape[1]), TILE_SIZE * TILE_SIZE)
        self.batch_size = max(1, min(self.batch_size, MAX_PIXELS_PER_PASS // area))

    def passes_per_slice(self, shape: tuple[int, int]) -> int:
        """Forward passes one slice of this shape takes: its tiles times the views averaged."""
        tiles = 1
        if not _fits_one_pass(*shape):
            tiles = len(tile_windows(shape[0], TILE_SIZE, TILE_MARGIN)) * len(
                tile_windows(shape[1], TILE_SIZE, TILE_MARGIN)
            )
        return tiles * len(self.views)

    def iter_run(self, batch: np.ndarray) -> Generator[int, None, np.ndarray]:
        """(3, B, H, W) maps of a (B, H, W) batch, whole or tile by tile for slices too large for one pass.

        Yields after every forward pass how many slice-passes it did (B for a whole batch, 1 for a
        tile), so that a caller can report progress and stop between passes.
        """
        height, width = batch.shape[-2:]
        try:
            if _fits_one_pass(height, width):
                return (yield from self._iter_whole(batch))
            planes = []
            for plane in batch:
                planes.append((yield from self._iter_tiled(plane)))
            return np.stack(planes, axis=1)
        except RuntimeError as error:
            if isinstance(error, torch.cuda.OutOfMemoryError) or not _is_out_of_memory(error):
                raise
            if MPS_OUT_OF_MEMORY in str(error):
                raise AcceleratorOutOfMemory(str(error)) from None
            raise MemoryError(
                f"out of memory on the {self.device.type.upper()} for a batch of {batch.shape[0]} slice(s) of "
                f"{height} x {width} px; use a batch size of 1 or close other programs"
            ) from None

    def _iter_whole(self, batch: np.ndarray) -> Generator[int, None, np.ndarray]:
        """The batch in one pass per view, the views' maps averaged; yields after each view."""
        padded, (height, width) = pad_to_multiple(batch)
        tensor = torch.from_numpy(np.ascontiguousarray(padded)).unsqueeze(1).to(self.device)
        summed: torch.Tensor | None = None
        for view in self.views:
            # No yield inside the context: it would leak inference mode to the caller while suspended.
            with torch.inference_mode(), reduced_precision(self.device, self.mixed_precision):
                maps = self._run_view(tensor, *view)
                summed = maps if summed is None else summed + maps
            yield batch.shape[0]
        assert summed is not None
        averaged = summed / len(self.views)
        return averaged[:, :, :height, :width].permute(1, 0, 2, 3).cpu().numpy()

    def _iter_tiled(self, plane: np.ndarray) -> Generator[int, None, np.ndarray]:
        """(3, H, W) maps of one large slice, stitched from the inner parts of overlapping tiles."""
        maps = np.empty((3, *plane.shape), dtype=np.float32)
        for rows, inner_rows in tile_windows(plane.shape[0], TILE_SIZE, TILE_MARGIN):
            for cols, inner_cols in tile_windows(plane.shape[1], TILE_SIZE, TILE_MARGIN):
                tile = (yield from self._iter_whole(plane[np.newaxis, rows, cols]))[:, 0]
                keep = (
                    slice(inner_rows.start - rows.start, inner_rows.stop - rows.start),
                    slice(inner_cols.start - cols.start, inner_cols.stop - cols.start),
                )
                maps[:, inner_rows, inner_cols] = tile[:, keep[0], keep[1]]
        return maps

    def _run_view(self, tensor: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
        """The (B, 3, H, W) maps of one rotated and/or mirrored view, turned back to the input's frame."""
        view = torch.rot90(tensor, turns, dims=(2, 3))
        maps = torch.cat([m.float() for m in self.network(view.flip(3) if mirrored else view)], dim=1)
        return torch.rot90(maps.flip(3) if mirrored else maps, -turns, dims=(2, 3))

    def back_off(self) -> str:
        """Halve the batch after a GPU (CUDA or MPS) out-of-memory error; at one slice, move to the CPU."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            note = f"out of GPU memory: retrying with batches of {self.batch_size} slice(s)"
        elif self.device.type != "cpu":
            self.device = torch.device("cpu")
            self.network = prepared_network(self.source, self.device)
            note = "out of GPU memory even for one slice: continuing on the CPU (slower)"
        else:
            raise MemoryError("out of memory on the CPU even for one slice; try a smaller image")
        self.notes.append(note)
        return note
