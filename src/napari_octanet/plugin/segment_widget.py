"""The "Segment vessels" dock: OCTA-Net's SCS (coarse) then SRS (fine) stage on an image layer.

A thin adapter: the form is read into a :class:`SegmentRequest` on the GUI thread (the pixels
copied), the core's inference runs in a worker (:mod:`._segment_job`, :mod:`._workers`), and the
result comes back to the GUI thread, where it is kept in a :class:`SegmentResult` (so that a new
threshold re-binarises the kept probability map at once, without running the network again) and
written into output layers tied to the source layer (:mod:`._layers`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, RadioButtons, SpinBox
from napari.layers import Image
from napari.utils import notifications
from superqt.utils import ensure_main_thread

from napari_octanet.core.registry import ModelEntry, ModelNotFoundError, registry
from napari_octanet.core.thresholds import Threshold, binarise

from ._layers import OutputKind, Placement, is_output, write_output
from ._model_choice import CHECKPOINT_FILE, checkpoint_picker
from ._segment_job import DeviceReport, SegmentOutcome, SegmentRequest, probe_devices, segment_job
from ._workers import (
    Job,
    JobCallbacks,
    JobControls,
    call_as_job,
    describe_failure,
    notify_failure,
    wrapping_label,
)

if TYPE_CHECKING:
    import napari

    from napari_octanet.core.inference import Segmentation

OTSU = "otsu"
MANUAL = "manual"
DEVICE_LABELS = {"auto": "auto (best available)", "cuda": "CUDA GPU", "mps": "Apple MPS", "cpu": "CPU"}

FINE = OutputKind("fine", "vessel probability", "image", {"colormap": "magma", "contrast_limits": (0.0, 1.0)})
VESSELS = OutputKind("vessels", "vessels", "labels", {"colormap": {None: "transparent", 1: "cyan"}, "opacity": 0.7})
_HIDDEN_MAP = {"contrast_limits": (0.0, 1.0), "visible": False}
COARSE = (
    OutputKind("pixel", "coarse vessel probability", "image", _HIDDEN_MAP),
    OutputKind("centerline", "coarse centerline probability", "image", _HIDDEN_MAP),
)


class FormError(ValueError):
    """The form cannot start a run; the message says what to choose instead."""


@dataclass(frozen=True)
class SegmentResult:
    """The last run's probability maps, where its layers go, and the threshold its vessel layer shows."""

    placement: Placement
    segmentation: Segmentation
    threshold: Threshold

    def vessel_mask(self) -> np.ndarray:
        return binarise(self.segmentation.fine, self.threshold).astype(np.uint8)

    def coarse_maps(self) -> tuple[np.ndarray, np.ndarray]:
        return self.segmentation.pixel, self.segmentation.centerline


class SegmentWidget(Container):
    """Choose an image layer, a model, a device and a threshold; Segment runs off the GUI thread."""

    def __init__(self, viewer: napari.viewer.Viewer, *, synchronous: bool | None = None) -> None:
        self._viewer = viewer
        self._devices: DeviceReport | None = None
        self._result: SegmentResult | None = None
        self._image = ComboBox(
            name="image",
            choices=self._image_choices,
            tooltip="Image layer to segment: grey 2D, RGB, or an (N, H, W) stack (slice by slice); "
            "8-bit, 16-bit or float pixels",
        )
        self._model = ComboBox(name="model", choices=self._model_choices)
        self._checkpoint = checkpoint_picker(
            "An OCTA-Net checkpoint (.safetensors), 'lite' or 'paper' configuration: the file says which",
            name="checkpoint",
        )
        self._device = ComboBox(
            name="device",
            choices=self._device_choices,
            tooltip="auto takes a CUDA GPU, then Apple MPS, then the CPU; out of GPU memory, the batch is "
            "halved and then the CPU takes over, with a warning",
        )
        self._device_info = wrapping_label("Checking this machine's devices…", name="device_info")
        self._batch = SpinBox(
            name="batch",
            min=1,
            max=64,
            value=4,
            tooltip="Stack slices per network pass; halved automatically when the GPU runs out of memory",
        )
        self._tta = CheckBox(
            name="tta",
            text="average 8 rotations and flips",
            tooltip="Test-time augmentation: segment each image turned and mirrored 8 ways and average the "
            "maps; 8 times slower, slightly cleaner vessels (about +0.01 Dice on OCTA-500 val scans)",
        )
        self._threshold = RadioButtons(
            name="threshold",
            choices=[("Otsu (paper)", OTSU), ("manual", MANUAL)],
            value=OTSU,
            orientation="horizontal",
            tooltip="How the fine probability map becomes the vessel mask: Otsu per image, as in the "
            "ROSE paper, or a fixed level; changing it re-thresholds the last result at once",
        )
        self._level = FloatSlider(
            name="level",
            min=0.01,
            max=0.99,
            step=0.01,
            value=0.5,
            enabled=False,
            tooltip="Manual threshold on the vessel probability (applies at once, no re-run)",
        )
        self._coarse = CheckBox(
            name="coarse",
            text="also add the coarse SCS maps",
            tooltip="Add the coarse stage's pixel-level and centerline-level probability maps as hidden image layers",
        )
        #: Segment and Cancel, the progress bar and the status line.
        self.controls = JobControls(
            "Segment",
            "Run OCTA-Net on the image layer; the viewer stays usable, and results go to the "
            "'<image> vessel probability' and '<image> vessels' layers",
            synchronous=synchronous,
        )
        #: The settings, by name (image, model, checkpoint, device, batch, tta, threshold, level, coarse).
        self.form = Container(
            widgets=[
                self._image,
                self._model,
                self._checkpoint,
                self._device,
                self._device_info,
                self._batch,
                self._tta,
                self._threshold,
                self._level,
                self._coarse,
            ]
        )
        self.form.margins = (0, 0, 0, 0)
        super().__init__(widgets=[self.form, self.controls], labels=False)
        self._connect_form(viewer)
        self._on_model_changed()
        self._unsubscribe = registry.subscribe(ensure_main_thread(self._on_model_registered))
        self._probe = self._start_device_probe(synchronous)
        self.native.destroyed.connect(self._on_destroyed)

    # -- wiring -------------------------------------------------------------------------------

    def _connect_form(self, viewer: napari.viewer.Viewer) -> None:
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._image.reset_choices)
        self._model.changed.connect(self._on_model_changed)
        self._threshold.changed.connect(self._on_threshold_changed)
        self._level.changed.connect(self._on_threshold_changed)
        self._coarse.changed.connect(self._on_coarse_toggled)
        self.controls.run_button.changed.connect(self.segment)

    def _on_destroyed(self) -> None:
        """The Qt widgets are gone: stop listening, and stop any job without calling back into them."""
        self._unsubscribe()
        self.controls.abandon()
        self._probe.abandon()

    # -- choices ------------------------------------------------------------------------------

    def _image_choices(self, _: ComboBox) -> list[tuple[str, Image]]:
        layers = self._viewer.layers
        return [(layer.name, layer) for layer in layers if isinstance(layer, Image) and not is_output(layer)]

    def _model_choices(self, _: ComboBox) -> list[tuple[str, str]]:
        return [(entry.name, entry.name) for entry in registry.entries()] + [(CHECKPOINT_FILE, CHECKPOINT_FILE)]

    def _device_choices(self, _: ComboBox) -> list[tuple[str, str]]:
        names = ("auto", *(self._devices.available if self._devices else ("cpu",)))
        return [(DEVICE_LABELS.get(name, name), name) for name in names]

    def _on_model_changed(self) -> None:
        from_file = self._model.value == CHECKPOINT_FILE
        self._checkpoint.visible = from_file
        entry = registry.get(self._model.value)
        self._model.tooltip = (
            f"{entry.description}\n{entry.path}"
            if entry
            else "Registered models (the bundled default, models trained in the Fine-tune dock), or a checkpoint file"
        )

    def select_model(self, spec: str | Path) -> None:
        """Choose a registered model by name, or else a checkpoint file by path (for scripts and docks)."""
        if str(spec) in registry.names():
            self._model.value = str(spec)
        else:
            self._model.value = CHECKPOINT_FILE
            self._checkpoint.value = Path(spec)

    def _on_model_registered(self, entry: ModelEntry) -> None:
        """A model trained meanwhile becomes selectable, and selected if nothing usable was."""
        nothing_usable = self._model.value == CHECKPOINT_FILE and not Path(self._checkpoint.value).is_file()
        self._model.reset_choices()
        if nothing_usable:
            self._model.value = entry.name

    # -- devices ------------------------------------------------------------------------------

    def _start_device_probe(self, synchronous: bool | None) -> Job[None, DeviceReport]:
        """Look for GPUs in a worker: it imports torch, which would freeze the viewer for seconds."""
        callbacks: JobCallbacks[None, DeviceReport] = JobCallbacks(
            on_result=self._on_devices_probed,
            on_error=lambda error: notify_failure("Checking this machine's devices", error),
        )
        probe = Job(call_as_job(probe_devices), callbacks, synchronous=synchronous)
        probe.start()
        return probe

    def _on_devices_probed(self, report: DeviceReport) -> None:
        self._devices = report
        self._device.reset_choices()
        found = ", ".join(DEVICE_LABELS.get(name, name) for name in report.available)
        self._device_info.value = f"Available here: {found}. auto → {report.auto_device}: {report.auto_reason}"

    # -- running ------------------------------------------------------------------------------

    def segment(self) -> None:
        """Check the form, copy the pixels, and start the job; a form problem becomes an error notification."""
        try:
            layer, request = self._read_request()
        except (FormError, ModelNotFoundError) as error:
            notifications.show_error(str(error))
            return
        self.controls.start(
            segment_job(request),
            on_result=functools.partial(self._on_segmented, Placement.of(layer)),
            on_error=self._on_failed,
        )

    def _read_request(self) -> tuple[Image, SegmentRequest]:
        layer = self._image.value
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
        checkpoint = self._checkpoint_path()
        request = SegmentRequest(
            image=np.array(layer.data),
            rgb=bool(layer.rgb),
            checkpoint=checkpoint,
            device=self._device.value,
            batch_size=int(self._batch.value),
            tta=bool(self._tta.value),
        )
        return layer, request

    def _checkpoint_path(self) -> Path:
        if self._model.value != CHECKPOINT_FILE:
            return registry.resolve(self._model.value)
        path = Path(self._checkpoint.value).expanduser()
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

    def _on_segmented(self, placement: Placement, outcome: SegmentOutcome) -> None:
        result = SegmentResult(placement, outcome.segmentation, self._current_threshold())
        self._result = result
        write_output(self._viewer, placement, FINE, result.segmentation.fine)
        self._write_vessels(result)
        if self._coarse.value:
            self._write_coarse(result)
        self._report(outcome)

    def _on_failed(self, error: Exception) -> None:
        notify_failure("Segmentation", error)
        self.controls.show_status(describe_failure("Segmentation", error))

    def _report(self, outcome: SegmentOutcome) -> None:
        """Say which device ran and why; out-of-memory fall-backs are warnings as well."""
        segmentation = outcome.segmentation
        notes = segmentation.notes
        for note in notes:
            notifications.show_warning(f"Segmentation: {note}")
        summary = f"Done in {outcome.seconds:.1f} s on {segmentation.device} ({outcome.device_reason})."
        self.controls.show_status(summary + "".join(f" Note: {note}." for note in notes))

    # -- thresholds and layers ----------------------------------------------------------------

    def _current_threshold(self) -> Threshold:
        return OTSU if self._threshold.value == OTSU else float(self._level.value)

    def _on_threshold_changed(self) -> None:
        """Re-binarise the kept map, only for a new threshold: napari re-sets the choices on layer events."""
        self._level.enabled = self._threshold.value == MANUAL
        threshold = self._current_threshold()
        if self._result is not None and self._result.threshold != threshold:
            self._result = replace(self._result, threshold=threshold)
            self._write_vessels(self._result)

    def _on_coarse_toggled(self, show: bool) -> None:
        if show and self._result is not None:
            self._write_coarse(self._result)

    def _write_vessels(self, result: SegmentResult) -> None:
        write_output(self._viewer, result.placement, VESSELS, result.vessel_mask())

    def _write_coarse(self, result: SegmentResult) -> None:
        for kind, data in zip(COARSE, result.coarse_maps(), strict=True):
            write_output(self._viewer, result.placement, kind, data)
