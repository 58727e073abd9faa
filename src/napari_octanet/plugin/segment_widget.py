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
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, PushButton, RadioButtons, SpinBox
from napari.layers import Image
from napari.utils import notifications

from napari_octanet.core.registry import ModelEntry, ModelNotFoundError, registry
from napari_octanet.core.thresholds import DEFAULT_SPECK_SIZE, Threshold, binarise, otsu_level

from ._combos import narrow
from ._dock_lifetime import DockEvents
from ._first_view import FitViewUntilMoved
from ._layers import OutputKind, Placement, add_corrections, find_corrections, is_output, write_output
from ._model_choice import CHECKPOINT_FILE, ModelListener, TrainedModel, checkpoint_picker, relist
from ._scrolling import ScrollingDock
from ._segment_job import DeviceReport, SegmentOutcome, SegmentRequest, probe_devices, segment_job
from ._workers import (
    FormError,
    Job,
    JobCallbacks,
    JobControls,
    call_as_job,
    describe_failure,
    notify_failure,
    wrapping_label,
)
from .writer import write_image, write_labels

if TYPE_CHECKING:
    import napari

    from napari_octanet.core.inference import Segmentation

OTSU = "otsu"
MANUAL = "manual"
DEVICE_LABELS = {"auto": "auto (best available)", "cuda": "CUDA GPU", "mps": "Apple MPS", "cpu": "CPU"}

#: The result shows over the scan: the probability map is added hidden, the mask translucent on top.
FINE = OutputKind(
    "fine", "vessel probability", "image", {"colormap": "magma", "contrast_limits": (0.0, 1.0), "visible": False}
)
VESSELS = OutputKind(
    "vessels",
    "vessels",
    "labels",
    {"colormap": {None: "transparent", 1: "yellow"}, "opacity": 0.5},
    editable=True,
)
_HIDDEN_MAP = {"contrast_limits": (0.0, 1.0), "visible": False}
COARSE = (
    OutputKind("pixel", "coarse vessel probability", "image", _HIDDEN_MAP),
    OutputKind("centerline", "coarse centerline probability", "image", _HIDDEN_MAP),
)


@dataclass(frozen=True)
class SegmentResult:
    """The last run's probability maps, where its layers go, and how its vessel layer's mask is made."""

    placement: Placement
    segmentation: Segmentation
    threshold: Threshold
    speck_size: int

    def vessel_mask(self) -> np.ndarray:
        return binarise(self.segmentation.fine, self.threshold, self.speck_size).astype(np.uint8)

    def otsu_levels(self) -> list[float]:
        """The Otsu level of each 2D map (one for an image, one per slice for a stack)."""
        fine = self.segmentation.fine
        return [otsu_level(plane) for plane in fine.reshape(-1, *fine.shape[-2:])]

    def coarse_maps(self) -> tuple[np.ndarray, np.ndarray]:
        return self.segmentation.pixel, self.segmentation.centerline


class SegmentWidget(ScrollingDock):
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
        self._specks = SpinBox(
            name="specks",
            label="drop specks up to (px)",
            min=0,
            max=100_000,
            value=DEFAULT_SPECK_SIZE,
            tooltip="Leave out of the vessel mask the isolated pieces of at most this many pixels (8-connected), "
            "which are noise rather than vessels; 0 keeps every piece, as the ROSE paper's protocol does. "
            "Applies at once, no re-run",
        )
        self._otsu_info = wrapping_label("", name="otsu_info")
        self._otsu_info.visible = False
        self._correct = PushButton(
            name="correct",
            text="Correct this result",
            tooltip="Copy the current vessel mask into an editable '<image> corrections' Labels layer to paint "
            "on; runs and threshold changes never write to it, and the Fine-tune dock trains on it",
        )
        self._save = PushButton(
            name="save",
            text="Save results…",
            tooltip="Write the vessel mask (PNG 0/255; a stack as one multi-page TIFF) and the vessel "
            "probability (float32 TIFF) of the last result into a folder; asks before replacing a file",
        )
        self._rerun_after_training = CheckBox(
            name="rerun",
            value=True,
            text="segment again with a newly fine-tuned model",
            tooltip="When the Fine-tune dock finishes, select its model here and segment the image it was "
            "trained on again, so you see what changed",
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
        #: The settings, by name (image, model, checkpoint, device, batch, tta, threshold, level, specks, coarse).
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
                self._specks,
                self._otsu_info,
                self._correct,
                self._save,
                self._rerun_after_training,
                self._coarse,
            ]
        )
        self.form.margins = (0, 0, 0, 0)
        super().__init__(Container(widgets=[self.form, self.controls], labels=False))
        for combo in (self._image, self._model):
            narrow(combo)
        self._connect_form(viewer)
        self._on_model_changed()
        self._models = ModelListener(self.native, self._model, self._on_model_registered, self._on_model_trained)
        self._probe = self._start_device_probe(synchronous)
        self.native.installEventFilter(DockEvents(self.native, on_undocked=self._on_undocked))
        self.native.destroyed.connect(self._on_destroyed)
        FitViewUntilMoved(self.native, viewer)

    # -- wiring -------------------------------------------------------------------------------

    def _connect_form(self, viewer: napari.viewer.Viewer) -> None:
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._image.reset_choices)
        viewer.layers.events.removed.connect(self._forget_result_of_a_removed_image)
        self._model.changed.connect(self._on_model_changed)
        for setting in (self._threshold, self._level, self._specks):
            setting.changed.connect(self._on_mask_rule_changed)
        self._coarse.changed.connect(self._on_coarse_toggled)
        self._correct.changed.connect(self.make_corrections_layer)
        self._save.changed.connect(self._ask_folder_and_save)
        self.controls.run_button.changed.connect(self.segment)

    def _on_undocked(self) -> None:
        """The dock was closed (napari's X keeps the widget alive): it must not go on with a run that nobody
        can see or cancel. Nor does it segment after a fine-tune, out of sight, replacing the user's layers:
        its :class:`ModelListener` stops listening."""
        self.controls.cancel()

    def _on_destroyed(self) -> None:
        """The Qt widgets are gone: stop any job without calling back into them."""
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
        entry = registry.get(str(spec))
        if entry is not None:
            relist(self._model)
            self._model.value = entry.name
        else:
            self._model.value = CHECKPOINT_FILE
            self._checkpoint.value = Path(spec)

    def _on_model_registered(self, entry: ModelEntry) -> None:
        """A model registered meanwhile (already listed) is selected if nothing usable was."""
        if self._model.value == CHECKPOINT_FILE and not Path(self._checkpoint.value).is_file():
            self._model.value = entry.name

    def _on_model_trained(self, trained: TrainedModel) -> None:
        """Select the new model and, if asked, segment the image it was trained on again (cellpose's loop)."""
        self.select_model(trained.name)
        image = next((layer for _, layer in self._image_choices(self._image) if layer.name == trained.image), None)
        if self._rerun_after_training.value and image is not None and not self.controls.running:
            self._image.value = image
            self.segment()

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
        """Check the form, copy the pixels, and start the job; a form problem becomes an error notification,
        and the status line's too (it would otherwise still show the last run's "Done")."""
        try:
            layer, request = self._read_request()
        except (FormError, ModelNotFoundError) as error:
            notifications.show_error(str(error))
            self.controls.show_status(f"Not started: {error}")
            return
        self.controls.start(
            segment_job(request),
            on_result=functools.partial(self._on_segmented, Placement.of(layer), self._model_name()),
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

    def _model_name(self) -> str:
        """The chosen model as the status line names it: its registered name, or the checkpoint file's."""
        if self._model.value == CHECKPOINT_FILE:
            return Path(self._checkpoint.value).name
        return str(self._model.value)

    def _on_segmented(self, placement: Placement, model_name: str, outcome: SegmentOutcome) -> None:
        """Keep and show the result, unless its image was removed during the run: its layers would come back."""
        if not self._in_viewer(placement):
            self.controls.show_status(f"{placement.source_name!r} was removed; its result was discarded.")
            return
        result = SegmentResult(placement, outcome.segmentation, self._current_threshold(), self._specks.value)
        self._result = result
        write_output(self._viewer, placement, FINE, result.segmentation.fine)
        self._write_vessels(result)
        if self._coarse.value:
            self._write_coarse(result)
        self._report(placement.source_name, model_name, outcome)

    def _in_viewer(self, placement: Placement) -> bool:
        """Whether the image layer a result was made from is still in the viewer."""
        return any(str(layer.unique_id) == placement.source_id for layer in self._viewer.layers)

    def _forget_result_of_a_removed_image(self) -> None:
        """Threshold changes rewrite the kept result's layers: once its image is removed, they must not."""
        if self._result is not None and not self._in_viewer(self._result.placement):
            self._result = None
            self._otsu_info.visible = False

    def _on_failed(self, error: Exception) -> None:
        notify_failure("Segmentation", error)
        self.controls.show_status(describe_failure("Segmentation", error))

    def _report(self, layer_name: str, model_name: str, outcome: SegmentOutcome) -> None:
        """Say which model made the result and which device ran it, and why; each note of the core (a
        featureless scan, an out-of-memory fall-back) is a warning naming the layer as well."""
        segmentation = outcome.segmentation
        notes = segmentation.notes
        for note in notes:
            notifications.show_warning(f"Segmentation of {layer_name!r}: {note}")
        summary = (
            f"Done in {outcome.seconds:.1f} s with {model_name} on {segmentation.device} in {segmentation.precision} "
            f"({outcome.device_reason})."
        )
        self.controls.show_status(summary + "".join(f" Note: {note}." for note in notes))

    # -- thresholds and layers ----------------------------------------------------------------

    def _current_threshold(self) -> Threshold:
        return OTSU if self._threshold.value == OTSU else float(self._level.value)

    def _on_mask_rule_changed(self) -> None:
        """Re-binarise the kept map, only for a new threshold or speck size: napari re-sets the choices
        on layer events."""
        self._level.enabled = self._threshold.value == MANUAL
        if self._result is None:
            return
        rule = replace(self._result, threshold=self._current_threshold(), speck_size=self._specks.value)
        if (rule.threshold, rule.speck_size) != (self._result.threshold, self._result.speck_size):
            self._result = rule
            self._write_vessels(rule)

    def _on_coarse_toggled(self, show: bool) -> None:
        if show and self._result is not None:
            self._write_coarse(self._result)

    def _write_vessels(self, result: SegmentResult) -> None:
        write_output(self._viewer, result.placement, VESSELS, result.vessel_mask())
        self._show_otsu_levels(result)

    def _show_otsu_levels(self, result: SegmentResult) -> None:
        self._otsu_info.visible = result.threshold == OTSU
        levels = result.otsu_levels()
        if len(levels) == 1:
            self._otsu_info.value = f"Otsu level used: {levels[0]:.3f}"
        else:
            self._otsu_info.value = f"Otsu levels used: {min(levels):.3f} to {max(levels):.3f} (one per slice)"

    def make_corrections_layer(self) -> None:
        """An editable copy of the current mask to paint on; an existing corrections layer is never replaced."""
        if self._result is None:
            notifications.show_error("Segment an image first: the corrections layer starts from its vessel mask.")
            return
        placement = self._result.placement
        layer = find_corrections(self._viewer, placement.source_id)
        if layer is None:
            layer = add_corrections(self._viewer, placement, self._result.vessel_mask())
        else:
            notifications.show_info(f"{layer.name!r} already holds your corrections; it is selected, not replaced.")
        self._viewer.layers.selection.active = layer
        layer.mode = "paint"

    def _write_coarse(self, result: SegmentResult) -> None:
        for kind, data in zip(COARSE, result.coarse_maps(), strict=True):
            write_output(self._viewer, result.placement, kind, data)

    # -- saving -------------------------------------------------------------------------------

    def _ask_folder_and_save(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        if self._result is None:
            notifications.show_error("Segment an image first: Save results writes its vessel mask and probability.")
            return
        folder = QFileDialog.getExistingDirectory(self.native, "Save the vessel mask and probability into")
        if folder:
            self.save_results(Path(folder))

    def save_results(self, folder: Path) -> list[Path]:
        """Write the last result's mask and probability into ``folder`` with the npe2 writers; files that
        exist are replaced only if the user says so. Returns the paths written (none if declined)."""
        if self._result is None:
            notifications.show_error("Segment an image first: Save results writes its vessel mask and probability.")
            return []
        mask = self._result.vessel_mask()
        stem = folder / self._result.placement.source_name
        mask_path = stem.with_name(f"{stem.name} vessels{'.png' if mask.ndim == 2 else '.tif'}")
        probability_path = stem.with_name(f"{stem.name} vessel probability.tif")
        existing = [path for path in (mask_path, probability_path) if path.exists()]
        if existing and not self._may_replace(existing):
            self.controls.show_status("Nothing saved: the existing files were kept.")
            return []
        try:
            write_labels(str(mask_path), mask, {})
            write_image(str(probability_path), self._result.segmentation.fine.astype(np.float32, copy=False), {})
        except (OSError, ValueError) as error:
            notify_failure("Saving the results", error)
            return []
        self.controls.show_status(f"Saved {mask_path.name} and {probability_path.name} in {folder}.")
        return [mask_path, probability_path]

    def _may_replace(self, paths: list[Path]) -> bool:
        from qtpy.QtWidgets import QMessageBox

        names = "\n".join(path.name for path in paths)
        answer = QMessageBox.question(
            self.native,
            "Replace files?",
            f"These files exist in {paths[0].parent}:\n{names}\n\nReplace them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
