"""What becomes of a Fine-tune run: the message that reports it, and its model listed everywhere.

The saved model is registered in the one model registry and announced to the Segment vessels dock,
which selects it and can segment the image again at once. The validation Dice before and after are
the trainer's own figures (:class:`~napari_octanet.core.training.trainer.TrainResult`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari.utils import notifications

from napari_octanet.core.registry import registry

from ._model_choice import TrainedModel, model_trained
from ._train_controls import TrainControls
from ._train_job import TrainOutcome, TrainRequest, keep_best
from ._workers import notify_failure


def describe_score(outcome: TrainOutcome) -> str:
    """Validation Dice of the best model and of the starting one, on the user's own held-out slices, when
    there were any."""
    result = outcome.result
    if result.best_dice is None:
        return "no validation"
    after = f"validation Dice {result.best_dice:.3f} on {outcome.n_val} held-out slice(s)"
    return after if result.starting_dice is None else f"{after}, {result.starting_dice:.3f} before fine-tuning"


class TrainResults:
    """Reports each run's end in a notification and the status line, and lists the model it kept.

    ``advance_name`` gives the form a fresh model name for the next run: called when a run has ended,
    and when a failed run's best model was kept under the name.
    """

    def __init__(self, controls: TrainControls, advance_name: Callable[[], None]) -> None:
        self._controls = controls
        self._advance_name = advance_name

    def on_trained(self, request: TrainRequest, outcome: TrainOutcome) -> None:
        result = outcome.result
        epochs = len(result.history)
        if result.stopped == "cancelled":
            headline = f"Training {self._controls.stopped_at()} ({epochs} epoch(s) finished)."
        elif result.stopped == "early-stopped":
            headline = (
                f"Training ended early after {epochs} epoch(s) without a better score, in {outcome.seconds:.0f} s."
            )
        else:
            headline = f"Training finished: {epochs} epoch(s) in {outcome.seconds:.0f} s on {result.device}."
        if outcome.model_path is None:
            message = f"{headline} No epoch finished, so no model was saved."
        else:
            score = describe_score(outcome)
            name = _register(request, outcome.model_path, score)
            message = f"{headline} Model {name!r} ({score}) is saved as {outcome.model_path}."
        notifications.show_info(message)
        self._controls.show_status(message)
        self._advance_name()

    def on_failed(self, request: TrainRequest, error: Exception) -> None:
        notify_failure("Training", error)
        self._controls.show_status(f"Training failed: {error}")
        try:
            kept = keep_best(request, {"note": f"best model of a training run that failed: {error}"})
        except (ValueError, OSError):  # no readable best checkpoint: nothing to keep
            return
        if kept is not None:
            name = _register(request, kept, "best model before the failure")
            notifications.show_info(f"The best model before the failure is kept as {kept} and listed as {name!r}.")
            self._advance_name()


def _register(request: TrainRequest, path: Path, score: str) -> str:
    """List the saved model everywhere, and tell the Segment vessels dock (it may segment again)."""
    entry = registry.register(
        path, path.stem, description=f"model fine-tuned in napari from {request.init or 'scratch'} ({score})"
    )
    model_trained.emit(TrainedModel(entry.name, request.data.slices[0].group))
    return entry.name


__all__ = ["TrainResults", "describe_score"]
