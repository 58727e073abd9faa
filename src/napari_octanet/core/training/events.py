"""What a training run reports: :class:`TrainEvent` progress as it goes, and its :class:`TrainResult` at the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

EventKind = Literal["start", "step", "epoch", "done"]
Stopped = Literal["completed", "early-stopped", "cancelled"]


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
