"""The fine-tuning job the training dock runs in a worker: training images, split, the core's trainer.

No Qt and no layers here: the request holds numpy copies made on the GUI thread. torch (through
the core's trainer) is imported only inside :func:`train_job`, which runs in the worker, so
importing the dock (and opening napari) stays fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._train_data import TrainingData

if TYPE_CHECKING:
    from napari_octanet.core.training.data import TrainingImage
    from napari_octanet.core.training.trainer import TrainEvent, TrainResult

#: An epoch draws random crops covering the training pixels about once, and at least this many batches.
MIN_STEPS_PER_EPOCH = 4
#: Epochs without a better validation score before a stage ends early.
PATIENCE = 10
STAGE_NAMES = {1: "Stage 1 (SCS, coarse)", 2: "Stage 2 (SRS, fine)"}

E = TypeVar("E")
P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TrainRequest:
    """Everything a run needs, read from the form and copied out of the layers on the GUI thread."""

    data: TrainingData
    folder: Path
    name: str
    #: A registered model's name or a checkpoint path to start from; None trains ``config`` from scratch.
    init: str | None
    config: str = "lite"
    epochs: int = 20
    #: Stage-2 (SRS) epochs; None means the trainer's default (a fifth of ``epochs``, at least 1).
    fine_epochs: int | None = None
    batch_size: int = 4
    lr: float = 1e-4
    augment: bool = True
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"

    @property
    def best_path(self) -> Path:
        return self.folder / f"{self.name}.safetensors"

    @property
    def stage_epochs(self) -> tuple[int, int]:
        fine = self.fine_epochs if self.fine_epochs is not None else max(1, self.epochs // 5)
        return self.epochs, fine


@dataclass(frozen=True)
class TrainProgress:
    """What the dock shows of a training event: a bar position, a status line, and the event itself."""

    done: int
    total: int
    message: str
    event: TrainEvent | None = None


@dataclass(frozen=True)
class TrainOutcome:
    result: TrainResult
    n_train: int
    n_val: int
    seconds: float


def samples_per_epoch(train: Sequence[TrainingImage], batch_size: int, crop_size: int) -> int:
    """Crops per epoch: about one pass over every training pixel, and never fewer than a few batches.

    (The core's default of one crop per image makes one-image fine-tuning a single step per epoch.)
    """
    coverage = sum(math.ceil(image.image.size / crop_size**2) for image in train)
    return max(coverage, batch_size * MIN_STEPS_PER_EPOCH)


def progress_of(event: TrainEvent, stage_epochs: tuple[int, int], scale: int = 1000) -> TrainProgress:
    """Turn a trainer event into a position out of ``scale`` over both stages, and a status line."""
    first, second = stage_epochs
    if event.kind == "done":
        return TrainProgress(scale, scale, event.message, event)
    within = event.epoch + (event.step / event.steps if event.kind == "step" and event.steps else 0.0)
    offset = 0 if event.stage == 1 else first
    done = min(scale, round(scale * (offset + within) / max(1, first + second)))
    stage = STAGE_NAMES.get(event.stage, f"Stage {event.stage}")
    if event.kind == "step":
        message = (
            f"{stage}, epoch {event.epoch + 1}/{event.epochs}: step {event.step}/{event.steps}, loss {event.loss:.4f}"
        )
    elif event.kind == "epoch":
        message = f"{stage}, epoch {event.epoch}/{event.epochs}: loss {event.loss:.4f}"
        if event.val_dice is not None:
            message += f", validation Dice {event.val_dice:.3f} (best {event.best_dice:.3f})"
    else:
        message = event.message
    return TrainProgress(done, scale, message, event)


def relay(events: Generator[E, None, R], convert: Callable[[E], P]) -> Generator[P, None, R]:
    """Yield ``convert(event)`` for each event and return the generator's result; closing closes it too.

    Closing matters: the trainer saves its last state when it is closed.
    """
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            yield convert(event)
    finally:
        events.close()


def train_job(request: TrainRequest, should_stop: Callable[[], bool]) -> Generator[TrainProgress, None, TrainOutcome]:
    """Build the training images, hold out the validation ones, and run the core's two-stage trainer."""
    from napari_octanet.core.training.augment import AugmentConfig
    from napari_octanet.core.training.data import split_train_val, training_image
    from napari_octanet.core.training.trainer import TrainSettings, iter_train

    started = time.perf_counter()
    slices = request.data.slices
    yield TrainProgress(0, 0, f"Preparing {len(slices)} training image(s)…")
    images = [training_image(s.image, s.label, centerline=s.centerline, name=s.name, group=s.group) for s in slices]
    train, val = split_train_val(images, request.val_fraction, request.seed)
    crop_size = request.data.crop_size
    settings = TrainSettings(
        out=str(request.best_path),
        config=request.config,
        init=request.init,
        epochs=request.epochs,
        fine_epochs=request.stage_epochs[1],
        batch_size=request.batch_size,
        lr=request.lr,
        augment=AugmentConfig() if request.augment else AugmentConfig.none(),
        crop_size=crop_size,
        samples_per_epoch=samples_per_epoch(train, request.batch_size, crop_size),
        patience=PATIENCE,
        seed=request.seed,
        device=request.device,
    )
    provenance: dict[str, Any] = {
        "trained_with": "napari-octanet Fine-tune dock",
        "images": sorted({s.group for s in slices}),
        "training_images": [image.name for image in train],
        "validation_images": [image.name for image in val],
    }
    events = iter_train(train, val, settings, should_stop=should_stop, provenance=provenance)
    result = yield from relay(events, lambda event: progress_of(event, request.stage_epochs))
    return TrainOutcome(result, len(train), len(val), time.perf_counter() - started)


__all__ = ["TrainOutcome", "TrainProgress", "TrainRequest", "progress_of", "samples_per_epoch", "train_job"]
