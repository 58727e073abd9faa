"""The training loop shared by ``octanet train`` and the napari fine-tuning dock.

:func:`iter_train` is a generator: it yields :class:`TrainEvent` progress (a few times per epoch)
and returns a :class:`TrainResult`. Callers stop it with ``should_stop`` (checked every step) or
by closing it; either way the last state is saved and the best checkpoint is kept.

Protocol (after the reference): stage 1 trains SCS on the pixel-level and centerline-level
targets; stage 2 trains SRS on the full label with SCS frozen, starting from the best stage-1
weights. Poly learning-rate decay (power 0.9) per epoch; Adam with weight decay. The best
checkpoint is chosen by validation Dice (Otsu threshold, the paper's protocol) on data held out
from training, never on a test split. Under ``torchrun`` the loop runs data-parallel (DDP).

Here: the run's start and end (settings checked, starting model, cancel, keep or replace the best
model). The parts: ``stages`` (the epoch and step loop), ``schedule`` (draws, batches, learning
rate, time budget), ``validation`` (scoring), ``checkpoints`` (resume state, best model,
provenance), ``calibration`` (the best model's own confidence calibration, fitted on the validation
images when the run ends), ``events`` (what the run reports).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..allocator import tune_allocator
from ..devices import precision_name, resolve_device
from ..files import check_output_file
from ..preprocess import InputError
from ..progress import run_to_end
from ..scale import FIELDS_KEY, PROVENANCE_KEY
from .calibration import calibrate_best_model, initial_calibration
from .checkpoints import initial_model, resumed_settings
from .data import TrainingImage, check_training_images, scales_by_group, whole_image_note, with_pixel_size
from .distributed import Distributed
from .events import Stopped, TrainEvent, TrainResult
from .schedule import check_whole_image_batches
from .settings import MIN_BATCH_SIZE, TrainSettings, default_fine_epochs, resume_changes
from .stages import Run, StopRequested


def _start_message(run: Run) -> str:
    """What a run says as it starts: device, precision and image counts, and the whole-image warning if any."""
    device, train, val, settings = run.device, run.train, run.val, run.settings
    precision = precision_name(device, run.mixed_precision)
    message = f"training on {device} in {precision} ({len(train)} training, {len(val)} validation images)"
    notes = [whole_image_note(train) if settings.crop_size is None and not settings.freeze_batch_norm else ""]
    resumed = resumed_settings(settings.resume) if settings.resume else None
    if resumed is not None and (changes := resume_changes(settings, resumed)):
        notes.append("resuming with changed settings: " + ", ".join(changes))
    return "; ".join([message, *filter(None, notes)])


def check_settings(settings: TrainSettings) -> None:
    """Refuse settings that would fail later (or lose a model) before any work is done."""
    fresh = settings.init in (None, "", "scratch") and not settings.resume
    if settings.freeze_batch_norm and fresh:
        raise InputError(
            "frozen batch norm keeps a starting model's statistics, and a network trained from scratch has none: "
            "start from a trained model (--init) or leave --freeze-batch-norm out"
        )
    if settings.batch_size < 1 or (settings.batch_size < MIN_BATCH_SIZE and not settings.freeze_batch_norm):
        raise InputError(
            f"batch size {settings.batch_size} is too small: batch normalisation needs at least {MIN_BATCH_SIZE} "
            "crops per batch (1 is allowed with frozen batch norm)"
        )
    if settings.epochs < 0 or (settings.epochs == 0 and fresh):
        raise InputError(
            f"{settings.epochs} stage-1 epochs would leave an untrained network; give at least 1 "
            "(0 is allowed only when fine-tuning a trained model's SRS stage)"
        )
    if settings.stage_epochs[1] < 0:
        raise InputError(f"fine (SRS) epochs must be 0 or more, got {settings.stage_epochs[1]}")
    if not settings.lr > 0:
        raise InputError(f"learning rate {settings.lr} must be positive")
    if settings.ema_decay is not None and not 0.0 < settings.ema_decay < 1.0:
        raise InputError(f"EMA decay {settings.ema_decay} must be between 0 and 1 (0.999 is usual)")
    if settings.skeleton_recall < 0:
        raise InputError(f"skeleton recall weight {settings.skeleton_recall} must be 0 or more")
    if settings.samples_per_epoch is not None and settings.samples_per_epoch < 1:
        raise InputError(f"samples per epoch {settings.samples_per_epoch} must be at least 1")
    _check_output(Path(settings.out), settings.overwrite or bool(settings.resume))


def _check_output(out: Path, may_replace: bool) -> None:
    """The model file must be new (or replacing it allowed) and its folder writable, checked up front."""
    check_output_file(out, overwrite=may_replace, example="model.safetensors")


def iter_train(
    train: Sequence[TrainingImage],
    val: Sequence[TrainingImage],
    settings: TrainSettings,
    should_stop: Callable[[], bool] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Generator[TrainEvent, None, TrainResult]:
    """Train OCTA-Net (both stages), yielding progress; see the module docstring."""
    check_training_images(train, settings.crop_size)
    check_settings(settings)
    train = with_pixel_size(train, settings.pixel_size_um, settings.fov_mm)
    val = with_pixel_size(val, settings.pixel_size_um, settings.fov_mm)
    tune_allocator()  # every training step allocates its activations anew: spare the page faults
    dist = Distributed.from_environment(settings.device)
    device = dist.device if dist.enabled else resolve_device(settings.device).device
    torch.manual_seed(settings.seed)
    network, state, optimizer_tensors, started_from = initial_model(settings, device)
    pixel_sizes, fields_of_view = scales_by_group(train)
    provenance = {
        **(provenance or {}),
        **({"started_from": started_from} if started_from else {}),
        PROVENANCE_KEY: pixel_sizes,
        FIELDS_KEY: fields_of_view,
        **initial_calibration(started_from, len(val)),
    }
    run = Run(network, train, list(val), settings, dist, device, provenance)
    check_whole_image_batches(settings, train, dist.world_size)
    starting_point = run.starting_point() if started_from and not settings.resume else None
    yield TrainEvent(
        "start",
        state.stage,
        state.epoch,
        settings.stage_epochs[state.stage - 1],
        message=_start_message(run),
    )
    stopped: Stopped = "completed"
    try:
        for stage in (1, 2):
            if state.stage > stage:
                continue
            if (yield from run.stage(stage, state, optimizer_tensors, should_stop or (lambda: False))):
                stopped = "early-stopped"
            optimizer_tensors = {}
            if stage == 1:
                run.restore_best(state)
                # The best model is judged on the SRS output from here on.
                state.stage, state.epoch, state.bad_epochs, state.stage_seconds, state.ema_updates = 2, 0, 0, 0.0, 0
                state.epoch_step, state.epoch_loss_sum = 0, 0.0
                if settings.stage_epochs[1] > 0:
                    state.best_score = None
    except (StopRequested, KeyboardInterrupt):
        stopped = "cancelled"
    except GeneratorExit:
        run.save_last(state)
        raise
    finally:
        dist.close()
    if stopped == "cancelled":
        run.save_last(state)
    elif not settings.keep_resume_state and run.dist.is_main:
        settings.last_path().unlink(missing_ok=True)
    best_file = run.checkpoints.best_path
    best_path = best_file if best_file.exists() and state.history else None
    kept = f"best model: {best_path}" if best_path else "no epoch finished, so no model was written"
    finished = stopped != "cancelled" and bool(state.history)
    if finished and starting_point is not None and starting_point.beats(run.best_val_dice(state)):
        run.keep_starting_model(state, starting_point)
        best_path = best_file
        kept = (
            f"no epoch beat the starting model (validation Dice {starting_point.val_dice:.4f}), "
            f"so it is kept as the best model: {best_path}"
        )
    if best_path is not None and run.dist.is_main:
        kept += "; " + calibrate_best_model(best_path, run.val, device, run.mixed_precision, half=settings.half)
    yield TrainEvent(
        "done",
        state.stage,
        state.epoch,
        settings.stage_epochs[min(state.stage, 2) - 1],
        best_dice=run.best_val_dice(state),
        message=f"training {stopped}; {kept}",
    )
    last_path = settings.last_path() if settings.last_path().exists() else None
    starting_dice = starting_point.val_dice if starting_point is not None else None
    return TrainResult(
        best_path, last_path, run.best_val_dice(state), stopped, state.history, str(device), starting_dice
    )


def train(
    train_images: Sequence[TrainingImage],
    val_images: Sequence[TrainingImage],
    settings: TrainSettings,
    **options: Any,
) -> TrainResult:
    """Run :func:`iter_train` to the end in the calling thread."""
    return run_to_end(iter_train(train_images, val_images, settings, **options))


__all__ = [
    "TrainEvent",
    "TrainResult",
    "TrainSettings",
    "check_settings",
    "check_training_images",
    "default_fine_epochs",
    "iter_train",
    "train",
]
