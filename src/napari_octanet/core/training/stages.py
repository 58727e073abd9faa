"""One run's stages, epoch by epoch and step by step: what each stage trains, its optimizer steps,
and what happens at the end of an epoch (validate, keep the best model, save the resume state).

Stage 1 trains SCS on the pixel-level and centerline-level targets; stage 2 trains SRS on the full
label with SCS frozen, starting from the best stage-1 weights.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..devices import fast_precision, full_precision, reduced_precision, uses_fast_precision
from ..network import OctaNet
from .averaging import WeightAverage, saved_average
from .checkpoints import RunCheckpoints, TrainState, load_optimizer_state
from .data import TrainingImage, prefetched
from .distributed import Distributed
from .events import TrainEvent
from .losses import get_loss, skeleton_recall_loss
from .schedule import StageClock, epoch_batches, samples_per_epoch, set_poly_learning_rate, steps_per_epoch
from .settings import TrainSettings
from .validation import Scores, StartingPoint, validation_scores


class StopRequested(Exception):
    """Raised inside the loop when ``should_stop`` turns true."""


class Run:
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
        self.checkpoints = RunCheckpoints(settings, provenance, dist.is_main)
        self.mixed_precision = uses_fast_precision(settings.mixed_precision)
        # float16 needs loss scaling against underflowing gradients; bfloat16 has float32's range.
        half = self.mixed_precision and fast_precision(device) == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=half)
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
        self.optimizer = optimizer = torch.optim.Adam(
            trainable.parameters(), lr=self.settings.lr, weight_decay=self.settings.weight_decay
        )
        if optimizer_tensors:
            load_optimizer_state(optimizer, optimizer_tensors)
        if self.settings.ema_decay is not None:
            self.average = WeightAverage(
                trainable, self.settings.ema_decay, saved_average(optimizer_tensors), state.ema_updates
            )
        wrapped = self.dist.wrap(trainable)
        samples = samples_per_epoch(self.settings, self.train, self.dist.world_size)
        steps = steps_per_epoch(self.settings, samples, self.dist.world_size)
        clock = StageClock(state.stage_seconds, self.settings.stage_budget_seconds(stage))
        for epoch in range(state.epoch, epochs):
            started = time.perf_counter()
            batches = epoch_batches(self.settings, self.train, self.dist, self.device, (stage, epoch), samples)
            for _ in range(state.epoch_step):  # the batches a run stopped mid-epoch already trained on
                next(batches)
            if self.device.type != "cpu":
                batches = prefetched(batches)
            for step in range(state.epoch_step, steps):
                if should_stop():
                    raise StopRequested
                if clock.out_of_time():
                    break
                progress = max((epoch + step / steps) / epochs, clock.fraction())
                set_poly_learning_rate(optimizer, self.settings.lr, progress)
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
        trained = self.validate(stage) if average is not None else None
        # With EMA the average is judged, and saved if it is the best; the trained weights are kept.
        with average.swapped_in() if average is not None else contextlib.nullcontext():
            scores = self.validate(stage)
            improved = self._record_epoch(state, stage, (epoch, steps_run), loss, scores, started, trained)
        val_dice = scores.dice
        state.epoch, state.epoch_step, state.epoch_loss_sum = epoch + 1, 0, 0.0
        self.save_last(state)
        message = (
            f"stage {stage} epoch {epoch + 1}/{epochs}: loss {loss:.4f}"
            + (f", val Dice {val_dice:.4f}" if val_dice is not None else "")
            + (" (best)" if improved else "")
        )
        return TrainEvent(
            "epoch", stage, epoch + 1, epochs, steps, steps, loss, val_dice, self.best_val_dice(state), message
        )

    def starting_point(self) -> StartingPoint | None:
        """Score the model fine-tuning starts from, so that a run which only makes it worse keeps it.

        Scored on the output the run's best model is finally judged by: SRS, or the coarse maps
        when no SRS epochs run. None without validation images.
        """
        final_stage = 2 if self.settings.stage_epochs[1] > 0 else 1
        val_dice = self.validate(final_stage).dice
        if val_dice is None:
            return None
        weights = {name: tensor.detach().clone() for name, tensor in self.network.state_dict().items()}
        return StartingPoint(weights, val_dice)

    def keep_starting_model(self, state: TrainState, start: StartingPoint) -> None:
        """Write the starting weights as the best model (with a note in its provenance)."""
        self.network.load_state_dict(start.weights)
        state.best_score = start.val_dice
        self.checkpoints.provenance["kept_starting_model"] = {"val_dice": start.val_dice}
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
    def validate(self, stage: int) -> Scores:
        """The network's scores on the run's validation images, on the output ``stage`` trains."""
        return validation_scores(self.network, self.val, stage, self.device, self.mixed_precision)

    def _record_epoch(
        self,
        state: TrainState,
        stage: int,
        epoch_and_steps: tuple[int, int],
        loss: float,
        scores: Scores,
        started: float,
        trained: Scores | None = None,
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
        self.checkpoints.save_best(self.network, state)

    def save_last(self, state: TrainState) -> None:
        """Write the resume state: the weights, the optimizer's and the weight average's state, the history."""
        self.checkpoints.save_last(self.network, state, self.optimizer, self.average)

    def restore_best(self, state: TrainState) -> None:
        """Stage 2 starts from the best stage-1 weights (or their average's last value), not the last ones."""
        if self.average is not None:
            self.average.copy_to_module()
            self.average = None
        if self.checkpoints.best_path.exists() and self.val:
            best, _ = load_checkpoint(self.checkpoints.best_path, self.device)
            self.network.load_state_dict(best.network.state_dict())


def _freeze_batch_norm_statistics(module: nn.Module) -> None:
    """Put every batch-norm layer of ``module`` in eval mode: it normalises by its running statistics
    and leaves them as they are, while its scale and shift still get gradients."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.eval()
