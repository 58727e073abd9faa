"""The segmentation job the widget runs in a worker: load (or reuse) the model, the core's inference, then
each slice's confidence and artefact flags (the core's quality checks, which cost a few % of the inference).

No Qt and no layers here. torch is imported only inside the functions, which run in the worker,
so importing the widget (and opening napari) stays fast.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from napari_octanet.core.checkpoint import LoadedModel
    from napari_octanet.core.inference import Segmentation
    from napari_octanet.core.progress import Progress
    from napari_octanet.core.quality import ScanQuality


@dataclass(frozen=True)
class SegmentRequest:
    """Everything a run needs, copied out of the GUI before the worker starts."""

    image: np.ndarray
    rgb: bool
    checkpoint: Path
    device: str
    batch_size: int
    #: Average the 8 rotations and flips (see the core's ``iter_segment``).
    tta: bool = False
    #: The scan's pixel size in µm, or None where none is known (the core then segments it as it is).
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class SegmentOutcome:
    segmentation: Segmentation
    #: Why this device ran the job (the core's words, e.g. "auto: no CUDA or MPS device found").
    device_reason: str
    seconds: float
    #: One per slice (one for a 2D or RGB scan): the confidence and the artefact flags.
    qualities: tuple[ScanQuality, ...] = ()


@dataclass(frozen=True)
class DeviceReport:
    """The devices this machine offers, best first, and what 'auto' would pick and why."""

    available: tuple[str, ...]
    auto_device: str
    auto_reason: str


def probe_devices() -> DeviceReport:
    from napari_octanet.core.devices import available_devices, resolve_device

    auto = resolve_device("auto")
    return DeviceReport(tuple(available_devices()), str(auto.device), auto.reason.removeprefix("auto: "))


class ModelCache:
    """Loaded models keyed by checkpoint file, its modification time and the device; the newest few kept.

    The modification time is in the key so that a checkpoint re-written in place (a training run
    saving its best model) is read again rather than served stale.
    """

    def __init__(self, capacity: int = 2) -> None:
        self._capacity = capacity
        self._models: OrderedDict[tuple[Path, int | None, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, checkpoint: Path, device: torch.device) -> LoadedModel:
        from napari_octanet.core.checkpoint import load_model

        key = (checkpoint.resolve(), _modified_ns(checkpoint), str(device))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load_model(checkpoint, device)
        with self._lock:
            self._models[key] = model
            while len(self._models) > self._capacity:
                self._models.popitem(last=False)
        return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def _modified_ns(path: Path) -> int | None:
    """None for a missing file: loading it then fails with the core's message naming the file."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


#: Shared by every segmentation widget in the process.
model_cache = ModelCache()


def segment_job(request: SegmentRequest, cache: ModelCache = model_cache) -> Generator[Progress, None, SegmentOutcome]:
    """Resolve the device, load the model (or reuse it), run the core's slice-batch inference, then assess each
    slice with the model's own calibration (a malformed one fails the run with the core's one line)."""
    from napari_octanet.core import inference, quality
    from napari_octanet.core.devices import resolve_device

    started = time.perf_counter()
    choice = resolve_device(request.device)
    yield inference.Progress(0, 0, f"loading model {request.checkpoint.name} on {choice.device}")
    model = cache.get(request.checkpoint, choice.device)
    segmentation = yield from inference.iter_segment(
        model,
        request.image,
        device=choice.device,
        batch_size=request.batch_size,
        rgb=request.rgb,
        tta=request.tta,
        pixel_size_um=request.pixel_size_um,
    )
    qualities = quality.assess(segmentation, request.image, quality.model_calibration(model.info.provenance))
    return SegmentOutcome(segmentation, choice.reason, time.perf_counter() - started, tuple(qualities))
