"""The fine-tuning job the training dock runs in a worker: training images, split, the core's trainer.

No Qt and no layers here: the request holds numpy copies made on the GUI thread. torch (through
the core's trainer) is imported only inside the functions that run in the worker, so importing
the dock (and opening napari) stays fast.

The trainer writes into a working folder (hidden inside the model library, so it is never
listed); at the end the best model is copied into the library as one float16 file under a
unique name, with its provenance, and the working files (resume state included) are removed,
however the run ends: finished, stopped before any epoch did, closed with the dock, or failed
(the dock then calls :func:`keep_best` itself).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from napari_octanet.core.training.layers import TrainingData
from napari_octanet.core.training.settings import (
    FINE_TUNE_AUGMENT,
    FINE_TUNE_BATCH_SIZE,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LR,
    AugmentConfig,
    TrainSettings,
    default_fine_epochs,
)

if TYPE_CHECKING:
    from napari_octanet.core.training.data import TrainingImage
    from napari_octanet.core.training.trainer import TrainEvent, TrainResult

#: An epoch draws random crops covering the training pixels about once, and at least this many batches.
MIN_STEPS_PER_EPOCH = 4
STAGE_NAMES = {1: "Stage 1 (SCS, coarse)", 2: "Stage 2 (SRS, fine)"}

E = TypeVar("E")
P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TrainRequest:
    """Everything a run needs, read from the form and copied out of the layers on the GUI thread."""

    data: TrainingData
    #: The run's working folder (best and resume checkpoints while it runs).
    folder: Path
    #: The model's wanted name in the library (made unique when saved).
    name: str
    #: A registered model's name or a checkpoint path to start from; None trains ``config`` from scratch.
    init: str | None
    #: The layers trained on, for the provenance: "image / labels" per row.
    source_layers: tuple[str, ...] = ()
    config: str = "lite"
    epochs: int = FINE_TUNE_EPOCHS
    #: Stage-2 (SRS) epochs; None means the trainer's default (a fifth of ``epochs``, at least 1).
    fine_epochs: int | None = None
    batch_size: int = FINE_TUNE_BATCH_SIZE
    lr: float = FINE_TUNE_LR
    #: Draw FINE_TUNE_AUGMENT's random views; False (fine-tuning's default) trains on the crops as they are.
    augment: bool = False
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"

    @property
    def best_path(self) -> Path:
        return self.folder / f"{self.name}.safetensors"

    @property
    def stage_epochs(self) -> tuple[int, int]:
        fine = self.fine_epochs if self.fine_epochs is not None else default_fine_epochs(self.epochs)
        return self.epochs, fine

    def provenance(self) -> dict[str, Any]:
        """What the saved model records of this run, besides what the trainer adds (epochs run, val Dice)."""
        return {
            "trained_with": "napari-octanet Fine-tune dock",
            "source_layers": list(self.source_layers),
            "starting_model": self.init or f"scratch ({self.config})",
            "epochs": {"scs": self.stage_epochs[0], "srs": self.stage_epochs[1]},
            "batch_size": self.batch_size,
            "learning_rate": self.lr,
        }


@dataclass(frozen=True)
class TrainProgress:
    """What the dock shows of a training event: a bar position, a status line, and the event itself."""

    done: int
    total: int
    message: str
    event: TrainEvent | None = None


@dataclass(frozen=True)
class TrainOutcome:
    """The trainer's result (with its validation Dice of the starting model and of the best one), and the run's."""

    result: TrainResult
    n_train: int
    n_val: int
    seconds: float
    #: The model's file in the library; None when no epoch finished (nothing worth keeping).
    model_path: Path | None = None


def samples_per_epoch(train: Sequence[TrainingImage], batch_size: int, crop_size: int) -> int:
    """Crops per epoch: about one pass over every training pixel, and never fewer than a few batches.

    (The core's default of one crop per image makes one-image fine-tuning a single step per epoch.)
    """
    coverage = sum(math.ceil(image.image.size / crop_size**2) for image in train)
    return max(coverage, batch_size * MIN_STEPS_PER_EPOCH)


def progress_of(event: TrainEvent, stage_epochs: tuple[int, int], steps_per_epoch: int) -> TrainProgress:
    """Turn a trainer event into a position in training steps over both stages, and a status line.

    The dock does not move the bar on the 'done' event: a run stopped half-way must not read 100 %.
    """
    first, second = stage_epochs
    steps = event.steps or steps_per_epoch
    total = steps * (first + second)
    offset = 0 if event.stage == 1 else first
    step = event.step if event.kind == "step" else 0
    done = min(total, (offset + event.epoch) * steps + step)
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
    return TrainProgress(done, total, message, event)


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


def keep_best(request: TrainRequest, provenance: dict[str, Any]) -> Path | None:
    """The run's best model, if an epoch finished, into the library (float16, a unique name); the working
    folder is removed either way."""
    from napari_octanet.core.library import save_to_library

    best = request.best_path
    try:
        return save_to_library(best, request.name, provenance) if best.is_file() else None
    finally:
        shutil.rmtree(request.folder, ignore_errors=True)


def train_job(request: TrainRequest, should_stop: Callable[[], bool]) -> Generator[TrainProgress, None, TrainOutcome]:
    """Run :func:`_train`; closed before it returns (the dock went away), keep the best model so far all the same."""
    try:
        return (yield from _train(request, should_stop))
    except GeneratorExit:
        with contextlib.suppress(ValueError, OSError):  # no readable best checkpoint: nothing to keep
            keep_best(request, {"note": "best model of a training run closed before it finished"})
        raise


def _train(request: TrainRequest, should_stop: Callable[[], bool]) -> Generator[TrainProgress, None, TrainOutcome]:
    """Build the training images, hold out the validation ones, run the core's two-stage trainer, keep the best.

    The trainer scores the starting model and every epoch on the held-out images itself: the dock's
    "before" and "after" are its figures, so no model is scored twice.
    """
    from napari_octanet.core.training.data import split_train_val, training_image
    from napari_octanet.core.training.trainer import iter_train

    started = time.perf_counter()
    slices = request.data.slices
    yield TrainProgress(0, 0, f"Preparing {len(slices)} training image(s)…")
    images = [
        training_image(
            s.image, s.label, centerline=s.centerline, name=s.name, group=s.group, pixel_size_um=s.pixel_size_um
        )
        for s in slices
    ]
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
        augment=FINE_TUNE_AUGMENT if request.augment else AugmentConfig.none(),
        crop_size=crop_size,
        samples_per_epoch=samples_per_epoch(train, request.batch_size, crop_size),
        seed=request.seed,
        device=request.device,
    )
    provenance: dict[str, Any] = {
        **request.provenance(),
        "images": sorted({s.group for s in slices}),
        "training_images": [image.name for image in train],
        "validation_images": [image.name for image in val],
    }
    steps = max(settings.samples_per_epoch or 0, request.batch_size) // request.batch_size
    events = iter_train(train, val, settings, should_stop=should_stop, provenance=provenance)
    result = yield from relay(events, lambda event: progress_of(event, request.stage_epochs, steps))
    model_path = keep_best(request, {"val_dice_before": result.starting_dice})
    return TrainOutcome(result, len(train), len(val), time.perf_counter() - started, model_path)


__all__ = ["TrainOutcome", "TrainProgress", "TrainRequest", "progress_of", "samples_per_epoch", "train_job"]
