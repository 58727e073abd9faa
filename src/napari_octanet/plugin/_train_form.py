"""The Fine-tune dock's form: the training rows, the starting model, the settings, and reading them into a request.

The form knows nothing of runs or their results; the dock (:mod:`.train_widget`) wires it up. Reading
copies the layers' pixels on the GUI thread (the worker never touches layers), with the checks of
:mod:`napari_octanet.core.training.data`, and takes each image's pixel size from its layer's scale
where that states one (the core's rule); otherwise the pixel size is unknown.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import Widget
from qtpy.QtWidgets import QAbstractSpinBox, QLabel

from napari_octanet.core.library import models_dir
from napari_octanet.core.registry import BUNDLED_ALIASES, DEFAULT_NAME, registry
from napari_octanet.core.training.layers import ImagePair, NamedArray, labelled_slices
from napari_octanet.core.training.settings import (
    FINE_TUNE_BATCH_SIZE,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LR,
    MIN_BATCH_SIZE,
    TrainSettings,
    default_fine_epochs,
)

from ._combos import narrow
from ._layers import is_unedited_result
from ._model_choice import CHECKPOINT_FILE, checkpoint_picker
from ._pixel_size import stated_by_scale
from ._suggested import Suggested
from ._train_job import TrainRequest
from ._train_pairs import PairRow, PairTable
from ._workers import FormError

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

#: Starting-model choices besides the registered models.
SCRATCH = "scratch (untrained, lite)"
#: Where a run keeps its working files (inside the library, hidden so that they are never listed).
WORK_FOLDER = ".training"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


@dataclass(frozen=True)
class ReadForm:
    """What a run takes from the form: the job's request, and what the user should be told before it starts."""

    request: TrainRequest
    notes: list[str]


def _timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: bold; margin-top: 6px;")
    return label


class TrainForm:
    """The settings of the Fine-tune dock, by name (``form["epochs"]``): model, checkpoint, epochs, fine_epochs,
    batch, lr, validation, augment, name; the rows of images and labels to train on are :attr:`pairs`."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        #: The (image, vessel labels, centerline) rows to train on.
        self.pairs = PairTable(viewer)
        self.model = ComboBox(name="model", label="start from", choices=self._model_choices)
        narrow(self.model)
        self.checkpoint = checkpoint_picker("An OCTA-Net checkpoint (.safetensors) to fine-tune", name="checkpoint")
        self.epochs = SpinBox(
            name="epochs",
            label="epochs (SCS)",
            min=1,
            max=1000,
            value=FINE_TUNE_EPOCHS,
            tooltip="Epochs of stage 1, the coarse SCS network. An epoch draws random crops covering the "
            "training images about once (at least 4 batches); a stage ends early after "
            f"{TrainSettings.patience} epochs without a better validation score",
        )
        self.fine_epochs = SpinBox(
            name="fine_epochs",
            label="epochs (SRS)",
            min=1,
            max=1000,
            value=default_fine_epochs(self.epochs.value),
            tooltip="Epochs of stage 2, the fine SRS network (the coarse one frozen); follows a fifth "
            "of the stage-1 epochs until you change it",
        )
        self.batch = SpinBox(
            name="batch",
            label="batch size",
            min=MIN_BATCH_SIZE,
            max=64,
            value=FINE_TUNE_BATCH_SIZE,
            tooltip=f"Random crops per training step; at least {MIN_BATCH_SIZE}, because batch normalisation "
            "needs two or more samples per batch to train",
        )
        self.lr = FloatSpinBox(
            name="lr",
            label="learning rate",
            min=1e-6,
            max=0.1,
            step=1e-6,
            value=FINE_TUNE_LR,
            tooltip=f"Adam learning rate (decays over the epochs); about {FINE_TUNE_LR:g} to fine-tune a "
            f"trained model, {TrainSettings.lr:g} from scratch",
        )
        self.lr.native.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.validation = FloatSpinBox(
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
        self.augment = CheckBox(
            name="augment",
            value=False,
            text="augment (small rotations, gamma, contrast, noise)",
            tooltip="Random small rotations, gamma, contrast and noise on the training crops (never flips "
            "or quarter turns: OCTA scans share one orientation). Off when fine-tuning a trained model, "
            "which adapts best to scans like yours without them; on when training from scratch",
        )
        self.name = LineEdit(
            name="name",
            label="model name",
            tooltip="The best model's name in the model library and in the docks' model lists; a number is "
            "added if the library already has a file of that name (set NAPARI_OCTANET_MODELS to move "
            "the library)",
        )
        #: The settings rows, with headings and the pair table among them; the dock adds its controls below.
        self.container = Container(
            widgets=[
                self.model,
                self.checkpoint,
                self.epochs,
                self.fine_epochs,
                self.batch,
                self.lr,
                self.validation,
                self.augment,
                self.name,
            ]
        )
        layout = self.container.native.layout()
        layout.insertWidget(self.container.index(self.name), _heading("Output"))  # before the rows above it shift
        for widget in (_heading("Model and settings"), self.pairs, _heading("Training data")):
            layout.insertWidget(0, widget)
        self._auto_name = ""
        self.advance_output_defaults(force=True)
        self.model.value = self._default_start()
        self._suggested_lr, self._suggested_augment = Suggested(self.lr), Suggested(self.augment)
        self._suggested_fine_epochs = Suggested(self.fine_epochs)
        self._on_model_changed()
        self.model.changed.connect(self._on_model_changed)
        self.epochs.changed.connect(self._on_epochs_changed)

    def __getitem__(self, name: str) -> Widget:
        """A setting by name, e.g. ``form["epochs"].value``."""
        return self.container[name]

    def align_labels(self) -> None:
        """magicgui sizes form labels with the default font, before napari's stylesheet applies; redo it."""
        labelled = [widget._labeled_widget() for widget in self.container]  # magicgui's own label pairing
        labels = [pair._label_widget.native for pair in labelled if pair is not None]
        if labels:
            widest = max(label.sizeHint().width() for label in labels)
            for label in labels:
                label.setMinimumWidth(widest)

    def _on_epochs_changed(self, epochs: int) -> None:
        """Stage-2 epochs follow a fifth of stage 1's, unless the user set them."""
        self._suggested_fine_epochs.suggest(default_fine_epochs(epochs))

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
        choice = self.model.value
        self.checkpoint.visible = choice == CHECKPOINT_FILE
        entry = registry.get(choice)
        self.model.tooltip = (
            f"Fine-tune {entry.description}\n{entry.path}"
            if entry
            else "The weights training starts from: a registered model (the bundled default, models "
            "trained here), a checkpoint file, or untrained 'lite' weights"
        )
        self._suggested_lr.suggest(TrainSettings.lr if choice == SCRATCH else FINE_TUNE_LR)
        self._suggested_augment.suggest(choice == SCRATCH)

    def _init(self) -> str | None:
        choice = self.model.value
        if choice == SCRATCH:
            return None
        if choice == CHECKPOINT_FILE:
            path = Path(str(self.checkpoint.value)).expanduser()
            if not path.is_file():
                raise FormError("Pick the checkpoint file (.safetensors) to start from, under 'checkpoint'.")
            return str(path)
        registry.resolve(choice)  # a model unregistered meanwhile is a ModelNotFoundError
        return choice

    # -- output -------------------------------------------------------------------------------

    def advance_output_defaults(self, *, force: bool = False) -> None:
        """A fresh name for the next run, unless the user typed their own."""
        if force or self.name.value == self._auto_name:
            self.name.value = self._auto_name = f"finetuned-{_timestamp()}"

    def _output(self) -> tuple[Path, str]:
        """The run's working folder and the model's name; the model itself goes to the library at the end."""
        name = self.name.value.strip()
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

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> ReadForm:
        """Check the form and copy the layers' pixels; a FormError, TrainingDataError or ModelNotFoundError says
        what to change. Nothing is written before the checks pass but the run's (empty) working folder."""
        pairs, notes = self._layer_pairs()
        data = labelled_slices(pairs)
        notes += data.notes
        validation = float(self.validation.value)
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
            epochs=int(self.epochs.value),
            fine_epochs=int(self.fine_epochs.value),
            batch_size=int(self.batch.value),
            lr=float(self.lr.value),
            augment=bool(self.augment.value),
            val_fraction=validation,
        )
        return ReadForm(request, notes)

    def _layer_pairs(self) -> tuple[list[ImagePair], list[str]]:
        """Copy each row's layers, and say where an image layer's scale was set but states no pixel size."""
        rows = self.pairs.rows
        if all(row.image.value is None for row in rows):
            raise FormError(
                "No image layer to train on: open an OCTA image (File ▸ Open) or the synthetic sample "
                "(File ▸ Open Sample ▸ OCTA-Net vessels), and paint its vessels in a Labels layer."
            )
        pairs: list[ImagePair] = []
        notes: list[str] = []
        for number, row in enumerate(rows, start=1):
            pair, remark = _copy_row(number, row)
            pairs.append(pair)
            if remark:
                notes.append(f"{pair.image.name!r} trains with its pixel size unknown: {remark}")
        return pairs, notes


def _copy_row(number: int, row: PairRow) -> tuple[ImagePair, str]:
    """One row's layers as a training pair with the image's pixel size, and why its scale gave none (if set)."""
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
    pixel_size = stated_by_scale(image)
    pair = ImagePair(
        _copy(image, rgb=bool(image.rgb)),
        _copy(label),
        _copy(centerline) if centerline is not None else None,
        pixel_size.um,
    )
    return pair, pixel_size.remark


def _copy(layer: Layer, *, rgb: bool = False) -> NamedArray:
    if layer.multiscale:
        raise FormError(
            f"Layer {layer.name!r} is multiscale (an image pyramid), which training does not take: add its "
            "full-resolution level as a layer of its own (viewer.add_image(layer.data[0]))."
        )
    return NamedArray(layer.name, np.array(layer.data), rgb)


__all__ = ["SCRATCH", "WORK_FOLDER", "ReadForm", "TrainForm"]
