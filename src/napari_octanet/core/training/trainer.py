"""The training loop shared by ``octanet train`` and the napari fine-tuning dock.

:func:`iter_train` is a generator: it yields :class:`TrainEvent` progress (a few times per epoch)
and returns a :class:`TrainResult`. Callers stop it with ``should_stop`` (checked every step) or
by closing it; either way the last state is saved and the best checkpoint is kept.

Protocol (after the reference): stage 1 trains SCS on the pixel-level and centerline-level
targets; stage 2 trains SRS on the full label with SCS frozen, starting from the best stage-1
weights. Poly learning-rate decay (power 0.9) per epoch; Adam with weight decay. The best
checkpoint is chosen by validation Dice (Otsu threshold, the paper's protocol) on data held out
from training, never on a test split. Under ``torchrun`` the loop runs data-parallel (DDP).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..allocator import tune_allocator
from ..checkpoint import LoadedModel, load_checkpoint, read_info, save_checkpoint
from ..devices import (
    fast_precision,
    full_precision,
    precision_name,
    reduced_precision,
    resolve_device,
    uses_fast_precision,
)
from ..files import ensure_writable_folder
from ..inference import segment
from ..metrics import evaluate_image
from ..network import NetworkConfig, OctaNet, get_config
from ..preprocess import InputError
from ..progress import run_to_end
from ..scale import PROVENANCE_KEY as PIXEL_SIZES_KEY
from .averaging import WeightAverage, saved_average
from .data import (
    TrainingImage,
    check_training_images,
    draws_for_one_size_batch,
    epoch_order,
    make_batch,
    pixel_sizes_by_group,
    prefetched,
    same_size_batches,
    whole_image_note,
    with_pixel_size,
)
from .distributed import Distributed
from .losses import get_loss, skeleton_recall_loss
from .settings import (
    MIN_BATCH_SIZE,
    TrainSettings,
    default_fine_epochs,
    recorded_settings,
    resume_changes,
    settings_record,
)

POLY_POWER = 0.9


EventKind = Literal["start", "step", "epoch", "done"]
Stopped = Literal["completed", "early-stopped", "cancelled"]


def _start_message(run: _Run) -> str:
    """What a run says as it starts: device, precision and image counts, and the whole-image warning if any."""
    device, train, val, settings = run.device, run.train, run.val, run.settings
    precision = precision_name(device, run.mixed_precision)
    message = f"training on {device} in {precision} ({len(train)} training, {len(val)} validation images)"
    notes = [whole_image_note(train) if settings.crop_size is None and not settings.freeze_batch_norm else ""]
    resumed = resumed_settings(settings.resume) if settings.resume else None
    if resumed is not None and (changes := resume_changes(settings, resumed)):
        notes.append("resuming with changed settings: " + ", ".join(changes))
    return "; ".join([message, *filter(None, notes)])


def resumed_settings(resume_state: str | Path) -> TrainSettings | None:
    """The settings of the run that wrote ``resume_state`` (None if it predates their recording)."""
    return recorded_settings(read_info(resume_state).provenance)


@dataclass(frozen=True)
class TrainEvent:
    """Progress of a training run within its stage.

    ``epoch`` counts the stage's finished epochs; a 'step' event's ``step`` counts the steps done
    in the epoch under way (of ``steps``); ``loss`` is that epoch's mean loss so far.
    """

    kind: EventKind
    stage: int
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    loss: float = float("nan")
    val_dice: float | None = None
    best_dice: float | None = None
    message: str = ""

    @property
    def done(self) -> int:
        """Steps finished in this stage."""
        return self.epoch * self.steps + (self.step if self.kind == "step" else 0)

    @property
    def total(self) -> int:
        """Steps planned for this stage (a time budget may end it sooner)."""
        return self.epochs * self.steps


@dataclass
class TrainState:
    """What ``last`` checkpoints record so that a run can resume where it stopped."""

    stage: int = 1
    epoch: int = 0
    #: Steps finished in the epoch under way, and the sum of their losses: a run stopped
    #: mid-epoch resumes at the next step, with the same batches an unbroken run would draw.
    epoch_step: int = 0
    epoch_loss_sum: float = 0.0
    #: The stage's best validation Dice, or minus its lowest mean training loss without validation;
    #: None until an epoch has finished.
    best_score: float | None = None
    bad_epochs: int = 0
    #: Seconds spent in the current stage (for a time budget that survives a resume).
    stage_seconds: float = 0.0
    #: Steps the stage's weight average has followed (see ``TrainSettings.ema_decay``).
    ema_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    """``best_path`` is None when no epoch finished (no model was written); ``best_dice`` is None without validation."""

    best_path: Path | None
    #: The resume state, where it was kept (a stopped run, or ``keep_resume_state``).
    last_path: Path | None
    best_dice: float | None
    stopped: Stopped
    history: list[dict[str, Any]]
    device: str
    #: The validation Dice of the model fine-tuning started from (None from scratch, on resume or
    #: without validation images): scored once, here, for "Dice before" wherever it is shown.
    starting_dice: float | None = None


class _Stop(Exception):
    """Raised inside the loop when ``should_stop`` turns true."""


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
    if out.is_dir():
        raise InputError(f"output {out} is a folder; give a file name such as {out / 'model.safetensors'}")
    if out.exists() and not may_replace:
        raise InputError(f"{out} already exists; choose another --out, or pass --overwrite (or --resume) to replace it")
    ensure_writable_folder(out.parent)


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
    network, state, optimizer_tensors, started_from = _initial_model(settings, device)
    provenance = {
        **(provenance or {}),
        **({"started_from": started_from} if started_from else {}),
        PIXEL_SIZES_KEY: pixel_sizes_by_group(train),
    }
    run = _Run(network, train, list(val), settings, dist, device, provenance)
    run.check_whole_image_batches()
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
    except (_Stop, KeyboardInterrupt):
        stopped = "cancelled"
    except GeneratorExit:
        run.save_last(state, run.optimizer)
        raise
    finally:
        dist.close()
    if stopped == "cancelled":
        run.save_last(state, run.optimizer)
    elif not settings.keep_resume_state and run.dist.is_main:
        settings.last_path().unlink(missing_ok=True)
    best_path = run.best_path if run.best_path.exists() and state.history else None
    kept = f"best model: {best_path}" if best_path else "no epoch finished, so no model was written"
    finished = stopped != "cancelled" and bool(state.history)
    if finished and starting_point is not None and starting_point.beats(run.best_val_dice(state)):
        run.keep_starting_model(state, starting_point)
        best_path = run.best_path
        kept = (
            f"no epoch beat the starting model (validation Dice {starting_point.val_dice:.4f}), "
            f"so it is kept as the best model: {best_path}"
        )
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


def _initial_model(
    settings: TrainSettings, device: torch.device
) -> tuple[OctaNet, TrainState, dict[str, torch.Tensor], dict[str, Any] | None]:
    """The network to train, the state to go on from, the optimizer's saved tensors, and the lineage."""
    if settings.resume:
        loaded, optimizer_tensors = load_checkpoint(settings.resume, device)
        saved = dict(loaded.info.training_state)
        if "best_dice" in saved:  # written before best_score had its name; -1 meant "none yet"
            old = saved.pop("best_dice")
            saved.setdefault("best_score", None if old == -1.0 else old)
        state = TrainState(**{k: saved[k] for k in asdict(TrainState()) if k in saved})
        return loaded.network, state, optimizer_tensors, loaded.info.provenance.get("started_from")
    if settings.init in (None, "", "scratch"):
        config = settings.config if isinstance(settings.config, NetworkConfig) else get_config(settings.config)
        return OctaNet(config).to(device), TrainState(), {}, None
    from ..registry import registry

    loaded: LoadedModel = load_checkpoint(registry.resolve(settings.init), device)[0]
    return loaded.network, TrainState(), {}, started_from(loaded)


def started_from(model: LoadedModel) -> dict[str, Any]:
    """A fine-tuned model's lineage: the starting model's file name and provenance, less its epoch history."""
    kept = {key: value for key, value in model.info.provenance.items() if key != "history"}
    return {"model": Path(model.source).name, **kept}


@dataclass
class _StartingPoint:
    """A fine-tuning run's starting model: its weights and its validation Dice on the final output."""

    weights: dict[str, torch.Tensor]
    val_dice: float

    def beats(self, best: float | None) -> bool:
        return best is None or self.val_dice > best


class _Run:
    """The pieces of one run that every stage shares."""

    def __init__(
        self,
        network: OctaNet,
        train: Sequence[TrainingImage],
        val: list[TrainingImage],
        settings: TrainSettings,
        dist: Distributed,
        device: torch.device,
        provenance: dict[str, Any],
    ) -> None:
        # Channels-last (as the inference copy): oneDNN then skips its layout conversions, and an SCS
        # step of 8 x 256 px on 2 CPU threads takes about 0.65 x the time (benchmarks/bench_training_step.py).
        self.network = network.to(memory_format=torch.channels_last)
        self.train = train
        self.val = val
        self.settings = settings
        self.dist = dist
        self.device = device
        self.loss = get_loss(settings.loss)
        self.best_path = Path(settings.out)
        self.mixed_precision = uses_fast_precision(settings.mixed_precision)
        # float16 needs loss scaling against underflowing gradients; bfloat16 has float32's range.
        half = self.mixed_precision and fast_precision(device) == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=half)
        self.provenance = {**provenance, "settings": settings_record(settings)}
        self.optimizer: torch.optim.Optimizer | None = None
        self.average: WeightAverage | None = None

    # -- one stage -------------------------------------------------------------------------
    def stage(
        self,
        stage: int,
        state: TrainState,
        optimizer_tensors: dict[str, torch.Tensor],
        should_stop: Callable[[], bool],
    ) -> Generator[TrainEvent, None, bool]:
        """Train one stage epoch by epoch, yielding every step and epoch; return True if it stopped early."""
        epochs = self.settings.stage_epochs[stage - 1]
        trainable = self._prepare_stage(stage)
        self.optimizer = torch.optim.Adam(
            trainable.parameters(), lr=self.settings.lr, weight_decay=self.settings.weight_decay
        )
        if optimizer_tensors:
            _load_optimizer(self.optimizer, optimizer_tensors)
        if self.settings.ema_decay is not None:
            self.average = WeightAverage(
                trainable, self.settings.ema_decay, saved_average(optimizer_tensors), state.ema_updates
            )
        wrapped = self.dist.wrap(trainable)
        samples = self.samples_per_epoch()
        steps = samples // (self.settings.batch_size * self.dist.world_size)
        clock = _StageClock(state.stage_seconds, self.settings.stage_budget_seconds(stage))
        for epoch in range(state.epoch, epochs):
            started = time.perf_counter()
            batches = self._batches(stage, epoch, samples)
            for _ in range(state.epoch_step):  # the batches a run stopped mid-epoch already trained on
                next(batches)
            if self.device.type != "cpu":
                batches = prefetched(batches)
            for step in range(state.epoch_step, steps):
                if should_stop():
                    raise _Stop
                if clock.out_of_time():
                    break
                self._set_learning_rate(max((epoch + step / steps) / epochs, clock.fraction()))
                loss = self._step(stage, wrapped, next(batches))
                if self.average is not None:
                    self.average.update()
                state.epoch_step, state.epoch_loss_sum = step + 1, state.epoch_loss_sum + loss
                state.stage_seconds = clock.elapsed()
                yield TrainEvent(
                    "step",
                    stage,
                    epoch,
                    epochs,
                    step + 1,
                    steps,
                    state.epoch_loss_sum / state.epoch_step,
                    best_dice=self.best_val_dice(state),
                )
            if state.epoch_step == 0:
                return False
            steps_run, loss = state.epoch_step, state.epoch_loss_sum / state.epoch_step
            yield self._end_epoch(state, stage, (epoch, epochs), (steps_run, steps), loss, started)
            if state.bad_epochs >= self.settings.patience:
                return True
            if clock.out_of_time():
                return False
        return False

    def _set_learning_rate(self, progress: float) -> None:
        """Poly decay over the stage's progress (by epochs or by the time budget, whichever is further)."""
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr * max(0.0, 1 - progress) ** POLY_POWER

    def _end_epoch(
        self,
        state: TrainState,
        stage: int,
        epoch_of: tuple[int, int],
        steps_of: tuple[int, int],
        loss: float,
        started: float,
    ) -> TrainEvent:
        """Validate, record the epoch, save the resume state (and the best model if it improved).

        ``epoch_of`` is (this epoch, the stage's epochs); ``steps_of`` is (steps run, steps planned):
        fewer run when the time budget ends an epoch early.
        """
        (epoch, epochs), (steps_run, steps) = epoch_of, steps_of
        average = self.average
        trained = self._validate(stage) if average is not None else None
        # With EMA the average is judged, and saved if it is the best; the trained weights are kept.
        with average.swapped_in() if average is not None else contextlib.nullcontext():
            scores = self._validate(stage)
            improved = self._record_epoch(state, stage, (epoch, steps_run), loss, scores, started, trained)
        val_dice = scores.dice
        state.epoch, state.epoch_step, state.epoch_loss_sum = epoch + 1, 0, 0.0
        self.save_last(state, self.optimizer)
        message = (
            f"stage {stage} epoch {epoch + 1}/{epochs}: loss {loss:.4f}"
            + (f", val Dice {val_dice:.4f}" if val_dice is not None else "")
            + (" (best)" if improved else "")
        )
        return TrainEvent(
            "epoch", stage, epoch + 1, epochs, steps, steps, loss, val_dice, self.best_val_dice(state), message
        )

    def starting_point(self) -> _StartingPoint | None:
        """Score the model fine-tuning starts from, so that a run which only makes it worse keeps it.

        Scored on the output the run's best model is finally judged by: SRS, or the coarse maps
        when no SRS epochs run. None without validation images.
        """
        final_stage = 2 if self.settings.stage_epochs[1] > 0 else 1
        val_dice = self._validate(final_stage).dice
        if val_dice is None:
            return None
        weights = {name: tensor.detach().clone() for name, tensor in self.network.state_dict().items()}
        return _StartingPoint(weights, val_dice)

    def keep_starting_model(self, state: TrainState, start: _StartingPoint) -> None:
        """Write the starting weights as the best model (with a note in its provenance)."""
        self.network.load_state_dict(start.weights)
        state.best_score = start.val_dice
        self.provenance["kept_starting_model"] = {"val_dice": start.val_dice}
        self.save_best(state)

    def best_val_dice(self, state: TrainState) -> float | None:
        """The stage's best validation Dice (None without validation or before the first epoch)."""
        return state.best_score if self.val else None

    def _prepare_stage(self, stage: int) -> nn.Module:
        """Stage 1 trains SCS; stage 2 freezes it (weights and batch-norm statistics) and trains SRS.

        With ``freeze_batch_norm`` the trained stage keeps its batch-norm statistics too.
        """
        coarse, fine = self.network.coarse, self.network.fine
        coarse.requires_grad_(stage == 1)
        fine.requires_grad_(stage == 2)
        coarse.train(stage == 1)
        fine.train(stage == 2)
        trainable = coarse if stage == 1 else fine
        if self.settings.freeze_batch_norm:
            _freeze_batch_norm_statistics(trainable)
        return trainable

    def samples_per_epoch(self) -> int:
        """Draws per epoch, all processes together: at least one full batch per process, however few the images."""
        per_step = self.settings.batch_size * self.dist.world_size
        return max(self.settings.samples_per_epoch or len(self.train), per_step)

    def check_whole_image_batches(self) -> None:
        """Refuse whole-image epochs too short to fill a batch of one image size: they would never make one."""
        if self.settings.crop_size is not None:
            return
        needed = draws_for_one_size_batch(self.train, self.settings.batch_size)
        drawn = self.samples_per_epoch() // self.dist.world_size
        if drawn < needed:
            raise InputError(
                f"whole images come in {len({image.image.shape for image in self.train})} sizes and each batch holds "
                f"{self.settings.batch_size} images of one size, so an epoch of {drawn} draws may fill no batch: "
                f"give at least {needed * self.dist.world_size} samples per epoch, a smaller batch, or crops"
            )

    def _batches(self, stage: int, epoch: int, samples: int) -> Any:
        seed = self.settings.seed * 100_003 + stage * 10_007 + epoch
        order = epoch_order(self.train, samples, self.settings.balance_groups, seed)[
            self.dist.rank :: self.dist.world_size
        ]
        generator = torch.Generator().manual_seed(seed * 31 + self.dist.rank)
        while True:
            for indices in self._group_into_batches(order):
                yield make_batch(self.train, indices, self.settings.crop_size, self.settings.augment, generator).to(
                    self.device
                )
            order = np.random.default_rng(seed := seed + 1).permutation(order)

    def _group_into_batches(self, order: np.ndarray) -> list[np.ndarray]:
        """Consecutive draws per batch; for whole images (no crop size), draws of one image shape."""
        size = self.settings.batch_size
        if self.settings.crop_size is None:
            return same_size_batches(self.train, order, size)
        return [order[start : start + size] for start in range(0, len(order) - size + 1, size)]

    def _loss(self, probability: torch.Tensor, target: torch.Tensor, centerline_target: torch.Tensor) -> torch.Tensor:
        """The run's loss, plus the skeleton recall term where it has a weight."""
        loss = self.loss(probability, target)
        if self.settings.skeleton_recall > 0:
            loss = loss + self.settings.skeleton_recall * skeleton_recall_loss(probability, centerline_target)
        return loss

    def _step(self, stage: int, trainable: nn.Module, batch: torch.Tensor) -> float:
        image, pixel_target, centerline_target, label = (batch[:, i : i + 1] for i in range(4))
        optimizer = self.optimizer
        if optimizer is None:
            raise RuntimeError("no optimizer: _step called outside a stage")
        optimizer.zero_grad(set_to_none=True)
        with reduced_precision(self.device, self.mixed_precision):
            if stage == 1:
                pixel, centerline = trainable(image)
                with full_precision(self.device):
                    loss = self._loss(pixel, pixel_target, centerline_target) + self.loss(centerline, centerline_target)
            else:
                with torch.no_grad():
                    pixel, centerline = self.network.coarse(image)
                fine = trainable(image, pixel, centerline)
                with full_precision(self.device):
                    loss = self._loss(fine, label, centerline_target)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return float(loss.detach())

    # -- validation and checkpoints ----------------------------------------------------------
    def _validate(self, stage: int) -> _Scores:
        """Mean Dice (Otsu) and AUC on the held-out images: the coarse max in stage 1, SRS in stage 2."""
        if not self.val:
            return _Scores(None, None, {})
        by_group: dict[str, list[dict[str, float]]] = {}
        for image in self.val:
            maps = segment(
                self.network,
                image.image,
                device=self.device,
                batch_size=1,
                prescaled=True,
                mixed_precision=self.mixed_precision,
            )
            probability = np.maximum(maps.pixel, maps.centerline) if stage == 1 else maps.fine
            by_group.setdefault(image.group, []).append(evaluate_image(probability, image.label))
        dice_by_group = {group: float(np.mean([s["dice"] for s in scores])) for group, scores in by_group.items()}
        return _Scores(_mean_over_groups(by_group, "dice"), _mean_over_groups(by_group, "auc"), dice_by_group)

    def _record_epoch(
        self,
        state: TrainState,
        stage: int,
        epoch_and_steps: tuple[int, int],
        loss: float,
        scores: _Scores,
        started: float,
        trained: _Scores | None = None,
    ) -> bool:
        """Keep the epoch in the history, and the model if it is the best.

        ``trained`` holds the trained weights' scores where ``scores`` are their average's (EMA).
        """
        epoch, steps = epoch_and_steps
        val_dice = scores.dice
        score = val_dice if val_dice is not None else -loss
        improved = state.best_score is None or score > state.best_score
        if improved:
            state.best_score, state.bad_epochs = score, 0
        else:
            state.bad_epochs += 1
        state.history.append(
            {
                "stage": stage,
                "epoch": epoch + 1,
                "steps": steps,
                "loss": loss,
                "val_dice": val_dice,
                "val_auc": scores.auc,
                **({"val_dice_by_group": scores.dice_by_group} if scores.dice_by_group else {}),
                **({"val_dice_trained_weights": trained.dice} if trained is not None else {}),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        if improved:
            self.save_best(state)
        return improved

    def save_best(self, state: TrainState) -> None:
        if self.dist.is_main:
            save_checkpoint(self.best_path, self.network, provenance=self._provenance(state), half=self.settings.half)

    def save_last(self, state: TrainState, optimizer: torch.optim.Optimizer | None) -> None:
        """Write the resume state; not before an epoch has finished (there is nothing worth resuming)."""
        if not self.dist.is_main or not state.history:
            return
        tensors, groups = _optimizer_tensors(optimizer) if optimizer is not None else ({}, [])
        if self.average is not None:
            tensors.update(self.average.state())
            state.ema_updates = self.average.updates
        training_state = {**asdict(state), "optimizer_param_groups": groups, "best_path": str(self.best_path)}
        save_checkpoint(
            self.settings.last_path(),
            self.network,
            provenance=self._provenance(state),
            training_state=training_state,
            optimizer_tensors=tensors,
        )

    def restore_best(self, state: TrainState) -> None:
        """Stage 2 starts from the best stage-1 weights (or their average's last value), not the last ones."""
        if self.average is not None:
            self.average.copy_to_module()
            self.average = None
        if self.best_path.exists() and self.val:
            best, _ = load_checkpoint(self.best_path, self.device)
            self.network.load_state_dict(best.network.state_dict())

    def _provenance(self, state: TrainState) -> dict[str, Any]:
        validation = [h for h in state.history if h.get("val_dice") is not None]
        best = max(validation, key=lambda h: h["val_dice"], default=None)
        return {
            **self.provenance,
            "epochs_run": len(state.history),
            "steps_run": {
                f"stage{stage}": sum(h.get("steps", 0) for h in state.history if h["stage"] == stage)
                for stage in (1, 2)
            },
            "best_validation": best,
            "history": state.history,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


@dataclass(frozen=True)
class _Scores:
    """Validation scores: mean Dice and AUC over the groups (None without validation), Dice per group."""

    dice: float | None
    auc: float | None
    dice_by_group: dict[str, float]


def _freeze_batch_norm_statistics(module: nn.Module) -> None:
    """Put every batch-norm layer of ``module`` in eval mode: it normalises by its running statistics
    and leaves them as they are, while its scale and shift still get gradients."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.eval()


def _mean_over_groups(by_group: dict[str, list[dict[str, float]]], key: str) -> float:
    """Mean of the per-group means, so that a large validation set does not outvote a small one.

    Undefined scores (NaN: Dice of an image whose label and mask are both empty, AUC of a one-class
    label) are left out, as ``core.metrics`` leaves them out of its means; all-NaN gives NaN.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "mean of empty slice" for all-NaN
        means = [np.nanmean([scores[key] for scores in group]) for group in by_group.values()]
        return float(np.nanmean(means))


class _StageClock:
    """Wall-clock time spent in a stage, counting time from before a resume."""

    def __init__(self, already: float, budget: float | None) -> None:
        self.start = time.monotonic() - already
        self.budget = budget

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def fraction(self) -> float:
        return 0.0 if not self.budget else min(1.0, self.elapsed() / self.budget)

    def out_of_time(self) -> bool:
        return self.budget is not None and self.elapsed() >= self.budget


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Flatten an optimizer's state into named tensors (safetensors) plus JSON-able groups."""
    state_dict = optimizer.state_dict()
    tensors = {
        f"state.{index}.{name}": torch.as_tensor(value)
        for index, values in state_dict["state"].items()
        for name, value in values.items()
    }
    return tensors, state_dict["param_groups"]


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Restore saved optimizer state, each moment laid out in memory like its (channels-last) parameter."""
    params = [param for group in optimizer.param_groups for param in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue  # the weight average's tensors share the resume state
        _, index, name = key.split(".", 2)
        param = params[int(index)]
        if value.shape == param.shape:
            value = torch.empty_like(param, dtype=value.dtype).copy_(value)
        state.setdefault(int(index), {})[name] = value
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


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
