"""The Segment dock's form: its settings, the choices they offer, and reading them into a run's request.

The form knows nothing of runs or result layers; the dock (:mod:`.segment_widget`) wires it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, PushButton, RadioButtons, SpinBox
from magicgui.widgets.bases import Widget
from napari.layers import Image

from napari_octanet.core.registry import registry
from napari_octanet.core.thresholds import DEFAULT_SPECK_SIZE, Threshold

from ._combos import narrow
from ._layers import is_output
from ._model_choice import CHECKPOINT_FILE, checkpoint_picker, relist
from ._pixel_size import PixelSize, PixelSizeField
from ._segment_job import DeviceReport, SegmentRequest
from ._segment_results import OTSU, MadeWith
from ._segment_save import source_file
from ._workers import FormError, wrapping_label

if TYPE_CHECKING:
    import napari

MANUAL = "manual"
DEVICE_LABELS = {"auto": "auto (best available)", "cuda": "CUDA GPU", "mps": "Apple MPS", "cpu": "CPU"}


@dataclass(frozen=True)
class ReadForm:
    """What a run takes from the form: the image layer, the job's request, the pixel size it was given (and
    where from), the model's name for the status line and what its result's record keeps."""

    layer: Image
    request: SegmentRequest
    pixel_size: PixelSize
    model_name: str
    made_with: MadeWith


class SegmentForm:
    """The settings of the Segment dock, by name (``form["model"]``): image, pixel_size, pixel_size_note, model,
    checkpoint, device, device_info, batch, tta, threshold, level, specks, otsu_info, correct, save, rerun, coarse."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._devices: DeviceReport | None = None
        self.image = ComboBox(
            name="image",
            choices=self._image_choices,
            tooltip="Image layer to segment: grey 2D, RGB, or an (N, H, W) stack (slice by slice); "
            "8-bit, 16-bit or float pixels",
        )
        #: The viewer's shared pixel size, for image layers whose scale states none.
        self.pixel_size = PixelSizeField(viewer)
        self.model = ComboBox(name="model", choices=self._model_choices)
        self.checkpoint = checkpoint_picker(
            "An OCTA-Net checkpoint (.safetensors), 'lite' or 'paper' configuration: the file says which",
            name="checkpoint",
        )
        self.device = ComboBox(
            name="device",
            choices=self._device_choices,
            tooltip="auto takes a CUDA GPU, then Apple MPS, then the CPU; out of GPU memory, the batch is "
            "halved and then the CPU takes over, with a warning",
        )
        self.device_info = wrapping_label("Checking this machine's devices…", name="device_info")
        self.batch = SpinBox(
            name="batch",
            min=1,
            max=64,
            value=4,
            tooltip="Stack slices per network pass; halved automatically when the GPU runs out of memory",
        )
        self.tta = CheckBox(
            name="tta",
            text="average 8 rotations and flips",
            tooltip="Test-time augmentation: segment each image turned and mirrored 8 ways and average the "
            "maps; 8 times slower, slightly cleaner vessels (about +0.01 Dice on OCTA-500 val scans)",
        )
        self.threshold = RadioButtons(
            name="threshold",
            choices=[("Otsu (paper)", OTSU), ("manual", MANUAL)],
            value=OTSU,
            orientation="horizontal",
            tooltip="How the fine probability map becomes the vessel mask: Otsu per image, as in the "
            "ROSE paper, or a fixed level; changing it re-thresholds the last result at once",
        )
        self.level = FloatSlider(
            name="level",
            min=0.01,
            max=0.99,
            step=0.01,
            value=0.5,
            enabled=False,
            tooltip="Manual threshold on the vessel probability (applies at once, no re-run)",
        )
        self.specks = SpinBox(
            name="specks",
            label="drop specks up to (px)",
            min=0,
            max=100_000,
            value=DEFAULT_SPECK_SIZE,
            tooltip="Leave out of the vessel mask the isolated pieces of at most this many pixels (8-connected), "
            "which are noise rather than vessels; 0 keeps every piece, as the ROSE paper's protocol does. "
            "Applies at once, no re-run",
        )
        self.otsu_info = wrapping_label("", name="otsu_info")
        self.otsu_info.visible = False
        self.correct = PushButton(
            name="correct",
            text="Correct this result",
            tooltip="Copy the current vessel mask into an editable '<image> corrections' Labels layer to paint "
            "on; runs and threshold changes never write to it, and the Fine-tune dock trains on it",
        )
        self.save = PushButton(
            name="save",
            text="Save results…",
            tooltip="Write the last result into a folder as 'octanet segment' does: <image>_vessels.png (0/255; "
            "a stack: one multi-page TIFF), <image>_probability.tif (float32) and <image>_segment.json, the "
            "record of the model, settings and pixel size that made them; asks before replacing a file",
        )
        self.rerun_after_training = CheckBox(
            name="rerun",
            value=True,
            text="segment again with a newly fine-tuned model",
            tooltip="When the Fine-tune dock finishes, select its model here and segment the image it was "
            "trained on again, so you see what changed",
        )
        self.coarse = CheckBox(
            name="coarse",
            text="also add the coarse SCS maps",
            tooltip="Add the coarse stage's pixel-level and centerline-level probability maps as hidden image layers",
        )
        self.container = Container(
            widgets=[
                self.image,
                self.pixel_size.spin_box,
                self.pixel_size.note,
                self.model,
                self.checkpoint,
                self.device,
                self.device_info,
                self.batch,
                self.tta,
                self.threshold,
                self.level,
                self.specks,
                self.otsu_info,
                self.correct,
                self.save,
                self.rerun_after_training,
                self.coarse,
            ]
        )
        self.container.margins = (0, 0, 0, 0)
        for combo in (self.image, self.model):
            narrow(combo)
        self.image.changed.connect(self._on_image_changed)
        self.model.changed.connect(self._on_model_changed)
        self.threshold.changed.connect(lambda: setattr(self.level, "enabled", self.threshold.value == MANUAL))
        self._on_image_changed()
        self._on_model_changed()

    def __getitem__(self, name: str) -> Widget:
        """A setting by name, e.g. ``form["model"].value``."""
        return self.container[name]

    # -- choices ------------------------------------------------------------------------------

    def image_layers(self) -> list[Image]:
        """The image layers on offer: the viewer's, less this plugin's results."""
        return [layer for layer in self._viewer.layers if isinstance(layer, Image) and not is_output(layer)]

    def _image_choices(self, _: ComboBox) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.image_layers()]

    def _model_choices(self, _: ComboBox) -> list[tuple[str, str]]:
        return [(entry.name, entry.name) for entry in registry.entries()] + [(CHECKPOINT_FILE, CHECKPOINT_FILE)]

    def _device_choices(self, _: ComboBox) -> list[tuple[str, str]]:
        names = ("auto", *(self._devices.available if self._devices else ("cpu",)))
        return [(DEVICE_LABELS.get(name, name), name) for name in names]

    def show_devices(self, report: DeviceReport) -> None:
        """Offer the devices this machine has, and say what 'auto' picks."""
        self._devices = report
        self.device.reset_choices()
        found = ", ".join(DEVICE_LABELS.get(name, name) for name in report.available)
        self.device_info.value = f"Available here: {found}. auto → {report.auto_device}: {report.auto_reason}"

    def _on_image_changed(self) -> None:
        self.pixel_size.show_source(self.image.value)

    def _on_model_changed(self) -> None:
        self.checkpoint.visible = self.model.value == CHECKPOINT_FILE
        entry = registry.get(self.model.value)
        self.model.tooltip = (
            f"{entry.description}\n{entry.path}"
            if entry
            else "Registered models (the bundled default, models trained in the Fine-tune dock), or a checkpoint file"
        )

    def select_model(self, spec: str | Path) -> None:
        """Choose a registered model by name, or else a checkpoint file by path."""
        entry = registry.get(str(spec))
        if entry is not None:
            relist(self.model)
            self.model.value = entry.name
        else:
            self.model.value = CHECKPOINT_FILE
            self.checkpoint.value = Path(spec)

    def has_usable_model(self) -> bool:
        return self.model.value != CHECKPOINT_FILE or Path(self.checkpoint.value).is_file()

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> ReadForm:
        """Check the form and copy the image's pixels; a FormError (or ModelNotFoundError) says what to choose."""
        layer = self.image.value
        if layer is None:
            raise FormError(
                "No image layer to segment: open an OCTA image (File ▸ Open), or the synthetic sample "
                "(File ▸ Open Sample ▸ OCTA-Net vessels)."
            )
        if layer.multiscale:
            raise FormError(
                f"Layer {layer.name!r} is multiscale (an image pyramid), which segmentation does not take: "
                "add its full-resolution level as a layer of its own (viewer.add_image(layer.data[0])) "
                "and segment that."
            )
        self.pixel_size.show_source(layer)
        pixel_size = self.pixel_size.for_layers(layer)
        request = SegmentRequest(
            image=np.array(layer.data),
            rgb=bool(layer.rgb),
            checkpoint=self._checkpoint_path(),
            device=self.device.value,
            batch_size=int(self.batch.value),
            tta=bool(self.tta.value),
            pixel_size_um=pixel_size.um,
        )
        made_with = MadeWith(request.checkpoint, request.tta, source_file(layer))
        return ReadForm(layer, request, pixel_size, self._model_name(), made_with)

    def _checkpoint_path(self) -> Path:
        if self.model.value != CHECKPOINT_FILE:
            return registry.resolve(self.model.value)
        path = Path(self.checkpoint.value).expanduser()
        if path.is_file():
            return path
        if not registry.entries():
            raise FormError(
                "No segmentation model is available yet: pick a trained OCTA-Net checkpoint (.safetensors) "
                "under 'checkpoint', or train one in the Fine-tune dock. A network with untrained weights "
                "is never used to segment."
            )
        raise FormError(
            "Pick a checkpoint file (.safetensors) under 'checkpoint', or choose a registered model under 'model'."
        )

    def _model_name(self) -> str:
        """The chosen model as the status line names it: its registered name, or the checkpoint file's."""
        if self.model.value == CHECKPOINT_FILE:
            return Path(self.checkpoint.value).name
        return str(self.model.value)

    def mask_rule(self) -> tuple[Threshold, int]:
        """How the vessel mask is made of the probability map: the threshold and the largest speck left out."""
        threshold: Threshold = OTSU if self.threshold.value == OTSU else float(self.level.value)
        return threshold, int(self.specks.value)
