"""A stage's schedule: how many draws and steps an epoch makes, which batches it draws, the learning rate
along the stage and the stage's time budget.

An epoch's batches are seeded by the run's seed, the stage and the epoch, so that a run resumed
mid-epoch draws the very batches an unbroken run would have drawn.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..preprocess import InputError
from .data import TrainingImage, draws_for_one_size_batch, epoch_order, make_batch, same_size_batches
from .distributed import Distributed
from .settings import TrainSettings

POLY_POWER = 0.9


def samples_per_epoch(settings: TrainSettings, train: Sequence[TrainingImage], world_size: int) -> int:
    """Draws per epoch, all processes together: at least one full batch per process, however few the images."""
    per_step = settings.batch_size * world_size
    return max(settings.samples_per_epoch or len(train), per_step)


def steps_per_epoch(settings: TrainSettings, samples: int, world_size: int) -> int:
    """Optimizer steps an epoch of ``samples`` draws makes (every process steps together)."""
    return samples // (settings.batch_size * world_size)


def check_whole_image_batches(settings: TrainSettings, train: Sequence[TrainingImage], world_size: int) -> None:
    """Refuse whole-image epochs too short to fill a batch of one image size: they would never make one."""
    if settings.crop_size is not None:
        return
    needed = draws_for_one_size_batch(train, settings.batch_size)
    drawn = samples_per_epoch(settings, train, world_size) // world_size
    if drawn < needed:
        raise InputError(
            f"whole images come in {len({image.image.shape for image in train})} sizes and each batch holds "
            f"{settings.batch_size} images of one size, so an epoch of {drawn} draws may fill no batch: "
            f"give at least {needed * world_size} samples per epoch, a smaller batch, or crops"
        )


def epoch_batches(
    settings: TrainSettings,
    train: Sequence[TrainingImage],
    dist: Distributed,
    device: torch.device,
    stage_and_epoch: tuple[int, int],
    samples: int,
) -> Iterator[torch.Tensor]:
    """This process's share of the epoch's batches on ``device``, endlessly (reshuffled once they run out)."""
    stage, epoch = stage_and_epoch
    seed = settings.seed * 100_003 + stage * 10_007 + epoch
    order = epoch_order(train, samples, settings.balance_groups, seed)[dist.rank :: dist.world_size]
    generator = torch.Generator().manual_seed(seed * 31 + dist.rank)
    while True:
        for indices in _group_into_batches(settings, train, order):
            yield make_batch(train, indices, settings.crop_size, settings.augment, generator).to(device)
        order = np.random.default_rng(seed := seed + 1).permutation(order)


def _group_into_batches(settings: TrainSettings, train: Sequence[TrainingImage], order: np.ndarray) -> list[np.ndarray]:
    """Consecutive draws per batch; for whole images (no crop size), draws of one image shape."""
    size = settings.batch_size
    if settings.crop_size is None:
        return same_size_batches(train, order, size)
    return [order[start : start + size] for start in range(0, len(order) - size + 1, size)]


def set_poly_learning_rate(optimizer: torch.optim.Optimizer, lr: float, progress: float) -> None:
    """Poly decay of ``lr`` along the stage: ``progress`` 0 to 1, by epochs or by time budget, whichever is further."""
    for group in optimizer.param_groups:
        group["lr"] = lr * max(0.0, 1 - progress) ** POLY_POWER


class StageClock:
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
