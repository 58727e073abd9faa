"""The "Fine-tune" dock: train OCTA-Net on image layers and the vessels painted on them.

A thin adapter, like the segmentation dock: the form (:mod:`._train_form`) is read and the layers'
pixels are copied into a :class:`TrainRequest` on the GUI thread, the core's trainer runs in a
worker (:mod:`._train_job`, :mod:`._train_controls`, :mod:`._workers`), and the progress and the
result come back to the GUI thread (:mod:`._train_results`). Stop asks the trainer to finish after
its current step, so it keeps the best model. The best model goes into the user's model library
(float16, a unique name, never over an existing file), is registered in the one model registry,
and is announced to the Segment vessels dock, which selects it and can segment the image again at once.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from napari.utils import notifications

from napari_octanet.core.registry import ModelNotFoundError
from napari_octanet.core.training.data import TrainingDataError

from ._dock_lifetime import DockEvents
from ._model_choice import ModelListener
from ._scrolling import ScrollingDock
from ._train_controls import TrainControls
from ._train_curve import LossCurve
from ._train_form import SCRATCH, WORK_FOLDER, TrainForm
from ._train_job import train_job
from ._train_results import TrainResults
from ._workers import FormError

if TYPE_CHECKING:
    import napari

    from napari_octanet.core.training.trainer import TrainEvent


class TrainWidget(ScrollingDock):
    """Pick images and their labels, a starting model and settings; Train runs off the GUI thread."""

    def __init__(self, viewer: napari.viewer.Viewer, *, synchronous: bool | None = None) -> None:
        self._viewer = viewer
        #: The training rows (``form.pairs``) and the settings, by name (``form["epochs"]``; see :class:`TrainForm`).
        self.form = TrainForm(viewer)
        #: Train and Stop, the progress bar and the status line.
        self.controls = TrainControls(self._on_train_event, synchronous=synchronous)
        #: Training loss and validation Dice per epoch of the current run.
        self.curve = LossCurve()
        self._results = TrainResults(self.controls, self.form.advance_output_defaults)
        layout = self.form.container.native.layout()
        layout.addWidget(self.controls.native)
        layout.addWidget(self.curve)
        super().__init__(self.form.container)
        self.native.installEventFilter(
            DockEvents(self.native, on_show=self.form.align_labels, on_undocked=self._on_undocked)
        )
        self._request_name = ""
        self.controls.run_button.changed.connect(self.train)
        # Renamed too: painting a result renames it to corrections, which the rows then pick.
        self._layer_events = (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.renamed)
        for event in self._layer_events:
            event.connect(self._on_layers_changed)
        self._models = ModelListener(self.native, self.form.model)
        self.native.destroyed.connect(self._on_destroyed)

    # -- wiring -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.controls.running

    def _on_layers_changed(self) -> None:
        self.form.pairs.reset_choices()

    def _on_undocked(self) -> None:
        """The dock was closed: nobody can press Stop any more, so stop now (the best model is still kept)."""
        if self.controls.running:
            notifications.show_info(
                f"Fine-tune dock closed: training stops after the current step, and the best model so far is "
                f"listed as {self._request_name!r}."
            )
            self.controls.cancel()

    def _on_destroyed(self) -> None:
        """The Qt widgets are gone: stop listening to layers, and stop a run without calling back into them."""
        for event in self._layer_events:
            event.disconnect(self._on_layers_changed)
        self.controls.abandon()

    # -- running ------------------------------------------------------------------------------

    def train(self) -> None:
        """Check the form, copy the layers' pixels, and start training; problems become notifications."""
        if self.controls.running:
            return
        try:
            read = self.form.read()
        except (FormError, TrainingDataError, ModelNotFoundError) as error:
            notifications.show_error(str(error))
            self.controls.show_status(f"Not started: {error}")
            return
        for note in read.notes:
            notifications.show_info(f"Fine-tune: {note}.")
        request = read.request
        self.curve.clear()
        self._request_name = request.name
        self.controls.start_training(
            functools.partial(train_job, request),
            on_result=functools.partial(self._results.on_trained, request),
            on_error=functools.partial(self._results.on_failed, request),
        )

    def _on_train_event(self, event: TrainEvent) -> None:
        if event.kind == "epoch":
            self.curve.add_epoch(event.stage, event.epoch, event.loss, event.val_dice)


__all__ = ["SCRATCH", "WORK_FOLDER", "TrainWidget"]
