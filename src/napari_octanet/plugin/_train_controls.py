"""The Fine-tune dock's Train and Stop buttons, progress bar and status line, and the job they run.

The segmentation dock's :class:`JobControls` cancels by closing the job at its next yield; training
instead sets a flag the trainer checks every step, so that it saves its last state and returns its
result (with the best model) as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from ._train_job import TrainOutcome, TrainProgress
from ._workers import JobControls

if TYPE_CHECKING:
    from napari_octanet.core.training.trainer import TrainEvent


class TrainControls(JobControls):
    """Train and Stop buttons, progress bar and status line; Stop lets the trainer finish cleanly."""

    def __init__(self, on_event: Callable[[TrainEvent], None], *, synchronous: bool | None = None) -> None:
        super().__init__(
            "Train",
            "Train on the rows above; the viewer stays usable. The best model is saved in the model "
            "library as '<model name>.safetensors' and added to the Segment vessels dock's models",
            synchronous=synchronous,
        )
        self.cancel_button.text = "Stop"
        self.cancel_button.tooltip = (
            "Stop after the current training step; the best model so far is saved and registered"
        )
        self._on_event = on_event
        self._stop = threading.Event()

    def start_training(
        self,
        job: Callable[[Callable[[], bool]], Generator[TrainProgress, None, TrainOutcome]],
        on_result: Callable[[TrainOutcome], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        """Start ``job(should_stop)`` with a fresh stop flag."""
        self._stop = threading.Event()
        self.start(job(self._stop.is_set), on_result, on_error)

    def cancel(self) -> None:
        if self.running and not self._stop.is_set():
            self.cancel_button.enabled = False
            self.show_status("Stopping after the current step; the best model so far will be kept…")
            self._stop.set()

    def abandon(self) -> None:
        self._stop.set()
        super().abandon()

    def show_progress(self, progress: TrainProgress) -> None:  # type: ignore[override]
        """The bar follows the steps; the final 'done' event leaves it where the last step put it."""
        if progress.event is None or progress.event.kind != "done":
            super().show_progress(progress)
        if progress.event is not None:
            self._on_event(progress.event)

    def ends_in_full(self, outcome: TrainOutcome) -> bool:  # type: ignore[override]
        """A completed (or early-stopped) run fills the bar; a stopped one leaves it where it stopped."""
        return outcome.result.stopped != "cancelled"

    def stopped_at(self) -> str:
        return f"stopped at step {self.progress_bar.value} of {self.progress_bar.max}"


__all__ = ["TrainControls"]
