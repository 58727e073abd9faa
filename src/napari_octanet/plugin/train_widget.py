"""The "Fine-tune" dock: train OCTA-Net on image layers and the vessels painted on them.

A thin adapter, like the segmentation dock: the form is read and the layers' pixels are copied
into a :class:`TrainRequest` on the GUI thread (with the checks in :mod:`napari_octanet.core.training.data`), the
core's trainer runs in a worker (:mod:`._train_job`, :mod:`._workers`), and the progress and the
result come back to the GUI thread. Stop asks the trainer to finish after its current step, so it
keeps the best model. The best model goes into the user's model library (float16, a unique name,
never over an existing file), is registered in the one model registry, and is announced to the
Segment vessels dock, which selects it and can segment the image again at once.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from napari.utils import notifications
from qtpy.QtWidgets import QAbstractSpinBox, QLabel

from napari_octanet.core.library import models_dir
from napari_octanet.core.registry import BUNDLED_ALIASES, DEFAULT_NAME, ModelNotFoundError, registry
from napari_octanet.core.training.data import ImagePair, NamedArray, TrainingDataError, labelled_slices
from napari_octanet.core.training.settings import (
    FINE_TUNE_BATCH_SIZE,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LR,
    MIN_BATCH_SIZE,
    TrainSettings,
    default_fine_epochs,
)

from ._combos import narrow
from ._dock_lifetime import DockEvents
from ._layers import is_unedited_result
from ._model_choice import CHECKPOINT_FILE, ModelListener, TrainedModel, checkpoint_picker, model_trained
from ._scrolling import ScrollingDock
from ._suggested import Suggested
from ._train_curve import LossCurve
from ._train_job import TrainOutcome, TrainProgress, TrainRequest, keep_best, train_job
from ._train_pairs import PairTable
from ._workers import FormError, JobControls, notify_failure

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from napari_octanet.core.training.trainer import TrainEvent

#: Starting-model choices besides the registered models.
SCRATCH = "scratch (untrained, lite)"
#: Where a run keeps its working files (inside the library, hidden so that they are never listed).
WORK_FOLDER = ".training"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


def _timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold; margin-top: 6px;")
    return label


class TrainControls(JobControls):
    """Train and Stop buttons, progress bar and status line; Stop lets the trainer finish cleanly.

    The segmentation dock's :class:`JobControls` cancels by closing the job at its next yield;
    training instead sets a flag the trainer checks every step, so that it saves its last state
    and returns its result (with the best model) as usual.
    """

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


class TrainWidget(ScrollingDock):
    """Pick images and their labels, a starting model and settings; Train runs off the GUI thread."""

    def __init__(self, viewer: napari.viewer.Viewer, *, synchronous: bool | None = None) -> None:
        self._viewer = viewer
        self._pairs = PairTable(viewer)
        self._model = ComboBox(name="model", label="start from", choices=self._model_choices)
        narrow(self._model)
        self._checkpoint = checkpoint_picker("An OCTA-Net checkpoint (.safetensors) to fine-tune", name="checkpoint")
        self._epochs = SpinBox(
            name="epochs",
            label="epochs (SCS)",
            min=1,
            max=1000,
            value=FINE_TUNE_EPOCHS,
            tooltip="Epochs of stage 1, the coarse SCS network. An epoch draws random crops covering the "
            "training images about once (at least 4 batches); a stage ends early after "
            f"{TrainSettings.patience} epochs without a better validation score",
        )
        self._fine_epochs = SpinBox(
            name="fine_epochs",
            label="epochs (SRS)",
            min=1,
            max=1000,
            value=default_fine_epochs(self._epochs.value),
            tooltip="Epochs of stage 2, the fine SRS network (the coarse one frozen); follows a fifth "
            "of the stage-1 epochs until you change it",
        )
        self._batch = SpinBox(
            name="batch",
            label="batch size",
            min=MIN_BATCH_SIZE,
            max=64,
            value=FINE_TUNE_BATCH_SIZE,
            tooltip=f"Random crops per training step; at least {MIN_BATCH_SIZE}, because batch normalisation "
            "needs two or more samples per batch to train",
        )
        self._lr = FloatSpinBox(
            name="lr",
            label="learning rate",
            min=1e-6,
            max=0.1,
            step=1e-6,
            value=FINE_TUNE_LR,
            tooltip=f"Adam learning rate (decays over the epochs); about {FINE_TUNE_LR:g} to fine-tune a "
            f"trained model, {TrainSettings.lr:g} from scratch",
        )
        self._lr.native.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self._val = FloatSpinBox(
            name="validation",
            label="validation",
            min=0.0,
            max=0.5,
            step=0.05,
            value=0.2,
            tooltip="Fraction of the labelled images (slices) held out to pick the best epoch by "
            "validation Dice; 0, or a single image, trains without validation and keeps the epoch "
            "with the lowest training loss",
        )
        self._augment = CheckBox(
            name="augment",
            value=False,
            text="augment (small rotations, gamma, contrast, noise)",
            tooltip="Random small rotations, gamma, contrast and noise on the training crops (never flips "
            "or quarter turns: OCTA scans share one orientation). Off when fine-tuning a trained model, "
            "which adapts best to scans like yours without them; on when training from scratch",
        )
        self._name = LineEdit(
            name="name",
            label="model name",
            tooltip="The best model's name in the model library and in the docks' model lists; a number is "
            "added if the library already has a file of that name (set NAPARI_OCTANET_MODELS to move "
            "the library)",
        )
        self._controls = TrainControls(self._on_train_event, synchronous=synchronous)
        self._curve = LossCurve()
        #: The settings rows by name (``form["epochs"]``), with plain Qt pieces (headings, the pair table,
        #: controls, curve) among them.
        self.form = Container(
            widgets=[
                self._model,
                self._checkpoint,
                self._epochs,
                self._fine_epochs,
                self._batch,
                self._lr,
                self._val,
                self._augment,
                self._name,
            ]
        )
        # Bottom up, so that the magicgui rows' indices hold.
        layout = self.form.native.layout()
        layout.addWidget(self._controls.native)
        layout.addWidget(self._curve)
        layout.insertWidget(self.form.index(self._name), _heading("Output"))
        for widget in (_heading("Model and settings"), self._pairs, _heading("Training data")):
            layout.insertWidget(0, widget)
        super().__init__(self.form)
        self.native.installEventFilter(
            DockEvents(self.native, on_show=self._align_labels, on_undocked=self._on_undocked)
        )
        self._auto_name = self._request_name = ""
        self._advance_output_defaults(force=True)
        self._model.value = self._default_start()
        self._suggested_lr, self._suggested_augment = Suggested(self._lr), Suggested(self._augment)
        self._suggested_fine_epochs = Suggested(self._fine_epochs)
        self._on_model_changed()
        self._model.changed.connect(self._on_model_changed)
        self._epochs.changed.connect(self._on_epochs_changed)
        self._controls.run_button.changed.connect(self.train)
        # Renamed too: painting a result renames it to corrections, which the rows then pick.
        self._layer_events = (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.renamed)
        for event in self._layer_events:
            event.connect(self._on_layers_changed)
        self._models = ModelListener(self.native, self._model)
        self.native.destroyed.connect(self._on_destroyed)

    # -- wiring -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controls.running

    def _on_epochs_changed(self, epochs: int) -> None:
        """Stage-2 epochs follow a fifth of stage 1's, unless the user set them."""
        self._suggested_fine_epochs.suggest(default_fine_epochs(epochs))

    def _on_layers_changed(self) -> None:
        self._pairs.reset_choices()

    def _align_labels(self) -> None:
        """magicgui sizes form labels with the default font, before napari's stylesheet applies; redo it."""
        labelled = [widget._labeled_widget() for widget in self.form]  # magicgui's own label pairing
        labels = [pair._label_widget.native for pair in labelled if pair is not None]
        if labels:
            widest = max(label.sizeHint().width() for label in labels)
            for label in labels:
                label.setMinimumWidth(widest)

    def _on_undocked(self) -> None:
        """The dock was closed: nobody can press Stop any more, so stop now (the best model is still kept)."""
        if self._controls.running:
            notifications.show_info(
                f"Fine-tune dock closed: training stops after the current step, and the best model so far is "
                f"listed as {self._request_name!r}."
            )
            self._controls.cancel()

    def _on_destroyed(self) -> None:
        """The Qt widgets are gone: stop listening to layers, and stop a run without calling back into them."""
        for event in self._layer_events:
            event.disconnect(self._on_layers_changed)
        self._controls.abandon()

    # -- starting model -----------------------------------------------------------------------

    def _model_choices(self, _: ComboBox) -> list[str]:
        return [*registry.names(), SCRATCH, CHECKPOINT_FILE]

    @staticmethod
    def _default_start() -> str:
        names = registry.names()
        if DEFAULT_NAME in names:
            return DEFAULT_NAME
        return names[0] if names else SCRATCH

    def _on_model_changed(self) -> None:
        choice = self._model.value
        self._checkpoint.visible = choice == CHECKPOINT_FILE
        entry = registry.get(choice)
        self._model.tooltip = (
            f"Fine-tune {entry.description}\n{entry.path}"
            if entry
            else "The weights training starts from: a registered model (the bundled default, models "
            "trained here), a checkpoint file, or untrained 'lite' weights"
        )
        self._suggested_lr.suggest(TrainSettings.lr if choice == SCRATCH else FINE_TUNE_LR)
        self._suggested_augment.suggest(choice == SCRATCH)

    def _checkpoint_file(self) -> Path:
        return Path(str(self._checkpoint.value)).expanduser()

    # -- output -------------------------------------------------------------------------------

    def _advance_output_defaults(self, *, force: bool = False) -> None:
        """A fresh name for the next run, unless the user typed their own."""
        if force or self._name.value == self._auto_name:
            self._name.value = self._auto_name = f"finetuned-{_timestamp()}"

    def _output(self) -> tuple[Path, str]:
        """The run's working folder and the model's name; the model itself goes to the library at the end."""
        name = self._name.value.strip()
        name = name.removesuffix(".safetensors")
        if not NAME_PATTERN.match(name):
            raise FormError(f"Model name {name!r} cannot be a file name: use letters, digits, spaces, '.', '_' or '-'.")
        if name in BUNDLED_ALIASES or name in (SCRATCH, CHECKPOINT_FILE) or name in registry.names():
            raise FormError(f"A model named {name!r} is already listed; choose another model name.")
        folder = models_dir() / WORK_FOLDER / f"{name}-{_timestamp()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FormError(f"Cannot create the folder {folder}: {error.strerror or error}.") from error
        return folder, name

    # -- running ------------------------------------------------------------------------------

    def train(self) -> None:
        """Check the form, copy the layers' pixels, and start training; problems become notifications."""
        if self._controls.running:
            return
        try:
            request, notes = self._read_request()
        except (FormError, TrainingDataError, ModelNotFoundError) as error:
            notifications.show_error(str(error))
            self._controls.show_status(f"Not started: {error}")
            return
        for note in notes:
            notifications.show_info(f"Fine-tune: {note}.")
        self._curve.clear()
        self._request_name = request.name
        self._controls.start_training(
            functools.partial(train_job, request),
            on_result=functools.partial(self._on_trained, request),
            on_error=functools.partial(self._on_failed, request),
        )

    def _read_request(self) -> tuple[TrainRequest, list[str]]:
        pairs = self._layer_pairs()
        data = labelled_slices(pairs)
        notes = list(data.notes)
        validation = float(self._val.value)
        if len(data.slices) == 1 and validation > 0:
            notes.append(
                "only one labelled image, so no validation is possible: training without validation "
                "keeps the epoch with the lowest training loss. Label more images or slices for a validated model"
            )
        elif validation == 0:
            notes.append("validation is 0: training without validation keeps the epoch with the lowest training loss")
        init = self._init()
        folder, name = self._output()
        request = TrainRequest(
            data=data,
            folder=folder,
            name=name,
            source_layers=tuple(f"{pair.image.name} / {pair.label.name}" for pair in pairs),
            init=init,
            epochs=int(self._epochs.value),
            fine_epochs=int(self._fine_epochs.value),
            batch_size=int(self._batch.value),
            lr=float(self._lr.value),
            augment=bool(self._augment.value),
            val_fraction=validation,
        )
        return request, notes

    def _layer_pairs(self) -> list[ImagePair]:
        """Copy each row's layers (on the GUI thread: the worker never touches layers)."""
        rows = self._pairs.rows
        if all(row.image.value is None for row in rows):
            raise FormError(
                "No image layer to train on: open an OCTA image (File ▸ Open) or the synthetic sample "
                "(File ▸ Open Sample ▸ OCTA-Net vessels), and paint its vessels in a Labels layer."
            )
        pairs = []
        for number, row in enumerate(rows, start=1):
            image, label = row.image.value, row.label.value
            if image is None:
                raise FormError(f"Row {number} has no image layer: choose one or remove the row (✕).")
            if label is None:
                raise FormError(
                    f"Choose the vessel labels for image {image.name!r}: add a Labels layer of the same "
                    "shape (Layers ▸ New Labels Layer) and paint the vessels (0 stays background)."
                )
            if is_unedited_result(label):
                raise FormError(
                    f"{label.name!r} is the model's own result, unedited: training on it teaches the model "
                    f"nothing. Paint your corrections on it first (painting turns it into a '… corrections' "
                    f"layer), or choose labels you drew for image {image.name!r}."
                )
            centerline = row.centerline.value
            pairs.append(
                ImagePair(
                    _copy(image, rgb=bool(image.rgb)),
                    _copy(label),
                    _copy(centerline) if centerline is not None else None,
                )
            )
        return pairs

    def _init(self) -> str | None:
        choice = self._model.value
        if choice == SCRATCH:
            return None
        if choice == CHECKPOINT_FILE:
            path = self._checkpoint_file()
            if not path.is_file():
                raise FormError("Pick the checkpoint file (.safetensors) to start from, under 'checkpoint'.")
            return str(path)
        registry.resolve(choice)  # a model unregistered meanwhile is a ModelNotFoundError
        return choice

    def _on_train_event(self, event: TrainEvent) -> None:
        if event.kind == "epoch":
            self._curve.add_epoch(event.stage, event.epoch, event.loss, event.val_dice)

    def _on_trained(self, request: TrainRequest, outcome: TrainOutcome) -> None:
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
            name = self._register(request, outcome.model_path, _score(outcome))
            message = f"{headline} Model {name!r} ({_score(outcome)}) is saved as {outcome.model_path}."
        notifications.show_info(message)
        self._controls.show_status(message)
        self._advance_output_defaults()

    def _register(self, request: TrainRequest, path: Path, score: str) -> str:
        """List the saved model everywhere, and tell the Segment vessels dock (it may segment again)."""
        entry = registry.register(
            path, path.stem, description=f"model fine-tuned in napari from {request.init or 'scratch'} ({score})"
        )
        model_trained.emit(TrainedModel(entry.name, request.data.slices[0].group))
        return entry.name

    def _on_failed(self, request: TrainRequest, error: Exception) -> None:
        notify_failure("Training", error)
        self._controls.show_status(f"Training failed: {error}")
        try:
            kept = keep_best(request, {"note": f"best model of a training run that failed: {error}"})
        except (ValueError, OSError):  # no readable best checkpoint: nothing to keep
            return
        if kept is not None:
            name = self._register(request, kept, "best model before the failure")
            notifications.show_info(f"The best model before the failure is kept as {kept} and listed as {name!r}.")
            self._advance_output_defaults()


def _score(outcome: TrainOutcome) -> str:
    """Validation Dice before and after, on the user's own held-out slices, when there were any."""
    if outcome.val_dice_after is None:
        return "no validation"
    after = f"validation Dice {outcome.val_dice_after:.3f} on {outcome.n_val} held-out slice(s)"
    return after if outcome.val_dice_before is None else f"{after}, {outcome.val_dice_before:.3f} before fine-tuning"


def _copy(layer: Layer, *, rgb: bool = False) -> NamedArray:
    if layer.multiscale:
        raise FormError(
            f"Layer {layer.name!r} is multiscale (an image pyramid), which training does not take: add its "
            "full-resolution level as a layer of its own (viewer.add_image(layer.data[0]))."
        )
    return NamedArray(layer.name, np.array(layer.data), rgb)


__all__ = ["TrainWidget"]
