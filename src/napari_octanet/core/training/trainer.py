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
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from ..devices import resolve_device
from ..inference import run_to_end, segment
from ..metrics import evaluate_image
from ..network import NetworkConfig, OctaNet, get_config
from ..preprocess import InputError
from .augment import AugmentConfig
from .data import TrainingImage, epoch_order, make_batch
from .distributed import Distributed
from .losses import get_loss

STEP_REPORTS_PER_EPOCH = 10
POLY_POWER = 0.9
FINE_SHARE = 0.1


@dataclass
class TrainSettings:
    """Everything that defines a training run (recorded in the checkpoint's provenance)."""

    out: str = "octanet.safetensors"
    #: A named configuration ('lite', 'paper') or a custom NetworkConfig (used with init 'scratch').
    config: str | NetworkConfig = "lite"
    init: str | None = None
    epochs: int = 30
    fine_epochs: int | None = None
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "dice_bce"
    crop_size: int = 256
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    samples_per_epoch: int | None = None
    balance_groups: bool = False
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool | None = None
    resume: str | None = None
    #: Wall-clock limit in minutes for both stages (None: none). Stage 1 gets FINE_SHARE less of it;
    #: the learning-rate decay follows whichever runs out first, epochs or time.
    time_budget_minutes: float | None = None

    def stage_budget_seconds(self, stage: int) -> float | None:
        if self.time_budget_minutes is None:
            return None
        share = FINE_SHARE if self.stage_epochs[1] > 0 else 0.0
        return 60.0 * self.time_budget_minutes * (share if stage == 2 else 1.0 - share)

    @property
    def stage_epochs(self) -> tuple[int, int]:
        fine = self.fine_epochs if self.fine_epochs is not None else max(1, self.epochs // 5)
        return self.epochs, fine

    def last_path(self) -> Path:
        out = Path(self.out)
        return out.with_name(out.stem + "-last" + out.suffix)


@dataclass(frozen=True)
class TrainEvent:
    """Progress of a training run. ``kind``: 'start', 'step', 'epoch' or 'done'."""

    kind: str
    stage: int
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    loss: float = float("nan")
    val_dice: float | None = None
    best_dice: float | None = None
    message: str = ""


@dataclass
class TrainState:
    """What ``last`` checkpoints record so that a run can resume where it stopped."""

    stage: int = 1
    epoch: int = 0
    best_dice: float = -1.0
    bad_epochs: int = 0
    #: Seconds spent in the current stage (for a time budget that survives a resume).
    stage_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    best_dice: float
    stopped: str
    history: list[dict[str, Any]]
    device: str


class _Stop(Exception):
    """Raised inside the loop when ``should_stop`` turns true."""


def check_training_images(train: Sequence[TrainingImage], crop_size: int) -> None:
    """Refuse data that cannot train anything, with a message that says what to fix."""
    if not train:
        raise InputError("no training images: give at least one image with a vessel label")
    if not any(image.label.any() for image in train):
        raise InputError("every label is empty: paint some vessels (any value > 0) before training")
    full = [image.name or str(i) for i, image in enumerate(train) if image.label.all()]
    if full:
        raise InputError(f"label(s) {', '.join(full)} mark every pixel as vessel; paint the background as 0")
    smallest = min(min(image.image.shape) for image in train)
    if smallest < 32:
        raise InputError(f"an image is only {smallest} pixels wide; training needs at least 32 x 32")
    if crop_size % 32:
        raise InputError(f"crop size {crop_size} must be a multiple of 32")


def iter_train(
    train: Sequence[TrainingImage],
    val: Sequence[TrainingImage],
    settings: TrainSettings,
    should_stop: Callable[[], bool] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Generator[TrainEvent, None, TrainResult]:
    """Train OCTA-Net (both stages), yielding progress; see the module docstring."""
    check_training_images(train, settings.crop_size)
    dist = Distributed.from_environment(settings.device)
    device = dist.device if dist.enabled else resolve_device(settings.device).device
    torch.manual_seed(settings.seed)
    network, state, optimizer_tensors = _initial_model(settings, device)
    run = _Run(network, train, list(val), settings, dist, device, provenance or {})
    yield TrainEvent(
        "start",
        state.stage,
        state.epoch,
        settings.stage_epochs[state.stage - 1],
        message=f"training on {device} ({len(train)} training, {len(val)} validation images)",
    )
    stopped = "completed"
    try:
        for stage in (1, 2):
            if state.stage > stage:
                continue
            yield from run.stage(stage, state, optimizer_tensors, should_stop or (lambda: False))
            optimizer_tensors = {}
            if stage == 1:
                run.restore_best(state)
                # The best model is judged on the SRS output from here on.
                state.stage, state.epoch, state.bad_epochs, state.stage_seconds = 2, 0, 0, 0.0
                if settings.stage_epochs[1] > 0:
                    state.best_dice = -1.0
    except (_Stop, KeyboardInterrupt):
        stopped = "cancelled"
    except GeneratorExit:
        run.save_last(state, run.optimizer)
        raise
    finally:
        dist.close()
    if stopped == "cancelled":
        run.save_last(state, run.optimizer)
    if not run.best_path.exists():
        run.save_best(state)
    yield TrainEvent(
        "done",
        state.stage,
        state.epoch,
        settings.stage_epochs[min(state.stage, 2) - 1],
        best_dice=state.best_dice,
        message=f"training {stopped}; best model: {run.best_path}",
    )
    return TrainResult(run.best_path, settings.last_path(), state.best_dice, stopped, state.history, str(device))


def _initial_model(
    settings: TrainSettings, device: torch.device
) -> tuple[OctaNet, TrainState, dict[str, torch.Tensor]]:
    if settings.resume:
        loaded, optimizer_tensors = load_checkpoint(settings.resume, device)
        saved = loaded.info.training_state
        state = TrainState(**{k: saved[k] for k in asdict(TrainState()) if k in saved})
        return loaded.network, state, optimizer_tensors
    if settings.init in (None, "", "scratch"):
        config = settings.config if isinstance(settings.config, NetworkConfig) else get_config(settings.config)
        return OctaNet(config).to(device), TrainState(), {}
    from ..registry import registry

    loaded: LoadedModel = load_checkpoint(registry.resolve(settings.init), device)[0]
    return loaded.network, TrainState(), {}


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
        self.network = network
        self.train = train
        self.val = val
        self.settings = settings
        self.dist = dist
        self.device = device
        self.loss = get_loss(settings.loss)
        self.best_path = Path(settings.out)
        self.mixed_precision = device.type == "cuda" if settings.mixed_precision is None else settings.mixed_precision
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.mixed_precision and device.type == "cuda")
        self.provenance = {**provenance, "settings": _settings_record(settings)}
        self.optimizer: torch.optim.Optimizer | None = None

    # -- one stage -------------------------------------------------------------------------
    def stage(
        self,
        stage: int,
        state: TrainState,
        optimizer_tensors: dict[str, torch.Tensor],
        should_stop: Callable[[], bool],
    ) -> Generator[TrainEvent, None, None]:
        epochs = self.settings.stage_epochs[stage - 1]
        trainable = self._prepare_stage(stage)
        self.optimizer = torch.optim.Adam(
            trainable.parameters(), lr=self.settings.lr, weight_decay=self.settings.weight_decay
        )
        if optimizer_tensors:
            _load_optimizer(self.optimizer, optimizer_tensors)
        wrapped = self.dist.wrap(trainable)
        per_step = self.settings.batch_size * self.dist.world_size
        # An epoch draws at least one full batch per process, however few the images.
        samples = max(self.settings.samples_per_epoch or len(self.train), per_step)
        steps = samples // per_step
        budget = self.settings.stage_budget_seconds(stage)
        clock = _StageClock(state.stage_seconds, budget)
        for epoch in range(state.epoch, epochs):
            started = time.perf_counter()
            losses: list[float] = []
            batches = self._batches(stage, epoch, samples)
            for step in range(steps):
                if should_stop():
                    raise _Stop
                if clock.out_of_time():
                    break
                progress = max((epoch + step / steps) / epochs, clock.fraction())
                for group in self.optimizer.param_groups:
                    group["lr"] = self.settings.lr * max(0.0, 1 - progress) ** POLY_POWER
                losses.append(self._step(stage, wrapped, next(batches)))
            state.stage_seconds = clock.elapsed()
            if not losses:
                break
                if (step + 1) % max(1, steps // STEP_REPORTS_PER_EPOCH) == 0 and step + 1 < steps:
                    yield TrainEvent(
                        "step", stage, epoch, epochs, step + 1, steps, float(np.mean(losses)), best_dice=state.best_dice
                    )
            val_dice, val_auc = self._validate(stage)
            improved = self._record_epoch(state, stage, epoch, float(np.mean(losses)), val_dice, val_auc, started)
            state.epoch = epoch + 1
            self.save_last(state, self.optimizer)
            message = (
                f"stage {stage} epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}"
                + (f", val Dice {val_dice:.4f}" if val_dice is not None else "")
                + (" (best)" if improved else "")
            )
            yield TrainEvent(
                "epoch",
                stage,
                epoch + 1,
                epochs,
                steps,
                steps,
                float(np.mean(losses)),
                val_dice,
                state.best_dice,
                message,
            )
            if state.bad_epochs >= self.settings.patience or clock.out_of_time():
                break

    def _prepare_stage(self, stage: int) -> nn.Module:
        """Stage 1 trains SCS; stage 2 freezes it (weights and batch-norm statistics) and trains SRS."""
        coarse, fine = self.network.coarse, self.network.fine
        coarse.requires_grad_(stage == 1)
        fine.requires_grad_(stage == 2)
        coarse.train(stage == 1)
        fine.train(stage == 2)
        return coarse if stage == 1 else fine

    def _batches(self, stage: int, epoch: int, samples: int) -> Any:
        seed = self.settings.seed * 100_003 + stage * 10_007 + epoch
        order = epoch_order(self.train, samples, self.settings.balance_groups, seed)[
            self.dist.rank :: self.dist.world_size
        ]
        generator = torch.Generator().manual_seed(seed * 31 + self.dist.rank)
        size = self.settings.batch_size
        while True:
            for start in range(0, len(order) - size + 1, size):
                yield make_batch(
                    self.train, order[start : start + size], self.settings.crop_size, self.settings.augment, generator
                ).to(self.device)
            order = np.random.default_rng(seed := seed + 1).permutation(order)

    def _step(self, stage: int, trainable: nn.Module, batch: torch.Tensor) -> float:
        image, pixel_target, centerline_target, label = (batch[:, i : i + 1] for i in range(4))
        optimizer = self.optimizer
        if optimizer is None:
            raise RuntimeError("no optimizer: _step called outside a stage")
        optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            if stage == 1:
                pixel, centerline = trainable(image.expand(-1, 3, -1, -1))
                with self._no_autocast():
                    loss = self.loss(pixel, pixel_target) + self.loss(centerline, centerline_target)
            else:
                with torch.no_grad():
                    pixel, centerline = self.network.coarse(image.expand(-1, 3, -1, -1))
                fine = trainable(image, pixel, centerline)
                with self._no_autocast():
                    loss = self.loss(fine, label)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return float(loss.detach())

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.mixed_precision and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _no_autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.mixed_precision and self.device.type == "cuda":
            return torch.autocast("cuda", enabled=False)
        return contextlib.nullcontext()

    # -- validation and checkpoints ----------------------------------------------------------
    def _validate(self, stage: int) -> tuple[float | None, float | None]:
        """Mean Dice (Otsu) and AUC on the held-out images: the coarse max in stage 1, SRS in stage 2."""
        if not self.val:
            return None, None
        was_training = (self.network.coarse.training, self.network.fine.training)
        by_group: dict[str, list[dict[str, float]]] = {}
        for image in self.val:
            maps = segment(self.network, image.image, device=self.device, batch_size=1, prescaled=True)
            probability = np.maximum(maps.pixel, maps.centerline) if stage == 1 else maps.fine
            by_group.setdefault(image.group, []).append(evaluate_image(probability, image.label))
        self.network.coarse.train(was_training[0])
        self.network.fine.train(was_training[1])
        return _mean_over_groups(by_group, "dice"), _mean_over_groups(by_group, "auc")

    def _record_epoch(
        self,
        state: TrainState,
        stage: int,
        epoch: int,
        loss: float,
        val_dice: float | None,
        val_auc: float | None,
        started: float,
    ) -> bool:
        score = val_dice if val_dice is not None else -loss
        improved = score > state.best_dice
        if improved:
            state.best_dice, state.bad_epochs = score, 0
        else:
            state.bad_epochs += 1
        state.history.append(
            {
                "stage": stage,
                "epoch": epoch + 1,
                "loss": loss,
                "val_dice": val_dice,
                "val_auc": val_auc,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        if improved:
            self.save_best(state)
        return improved

    def save_best(self, state: TrainState) -> None:
        if self.dist.is_main:
            save_checkpoint(self.best_path, self.network, provenance=self._provenance(state))

    def save_last(self, state: TrainState, optimizer: torch.optim.Optimizer | None) -> None:
        if not self.dist.is_main:
            return
        tensors, groups = _optimizer_tensors(optimizer) if optimizer is not None else ({}, [])
        training_state = {**asdict(state), "optimizer_param_groups": groups, "best_path": str(self.best_path)}
        save_checkpoint(
            self.settings.last_path(),
            self.network,
            provenance=self._provenance(state),
            training_state=training_state,
            optimizer_tensors=tensors,
        )

    def restore_best(self, state: TrainState) -> None:
        """Stage 2 starts from the best stage-1 weights, not the last ones."""
        if self.best_path.exists() and self.val:
            best, _ = load_checkpoint(self.best_path, self.device)
            self.network.load_state_dict(best.network.state_dict())

    def _provenance(self, state: TrainState) -> dict[str, Any]:
        validation = [h for h in state.history if h.get("val_dice") is not None]
        best = max(validation, key=lambda h: h["val_dice"], default=None)
        return {
            **self.provenance,
            "epochs_run": len(state.history),
            "best_validation": best,
            "history": state.history,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


def _mean_over_groups(by_group: dict[str, list[dict[str, float]]], key: str) -> float:
    """Mean of the per-group means, so that a large validation set does not outvote a small one."""
    return float(np.mean([np.mean([scores[key] for scores in group]) for group in by_group.values()]))


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


def _settings_record(settings: TrainSettings) -> dict[str, Any]:
    record = asdict(settings)
    record["augment"] = asdict(settings.augment)
    return record


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
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
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


__all__ = ["TrainEvent", "TrainResult", "TrainSettings", "check_training_images", "iter_train", "train"]
