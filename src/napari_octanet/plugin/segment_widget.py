"""The "Segment vessels" dock: OCTA-Net's SCS (coarse) then SRS (fine) stage on an image layer.

A thin adapter: the form (:mod:`._segment_form`) is read into a request on the GUI thread (the
pixels copied, the pixel size taken from the layer's scale or the shared field), the core's
inference runs in a worker (:mod:`._segment_job`, :mod:`._workers`), and the result comes back to
the GUI thread, where it is kept and written into output layers tied to the source layer
(:mod:`._segment_results`), and its slices' confidence and flags join the review queue
(:mod:`._review_queue`). This module wires them together and reports each run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import Container
from napari.utils import notifications

from napari_octanet.core.registry import ModelEntry, ModelNotFoundError

from ._dock_lifetime import DockEvents
from ._first_view import FitViewUntilMoved
from ._layers import Placement
from ._model_choice import ModelListener, TrainedModel
from ._review_queue import ReviewEntry, ReviewQueue, entries_of, go_to_slice, quality_summary, show_only, shown_slice
from ._scrolling import ScrollingDock
from ._segment_form import ReadForm, SegmentForm
from ._segment_job import DeviceReport, SegmentOutcome, probe_devices, segment_job
from ._segment_results import ResultLayers, SegmentResult
from ._segment_save import files_in_the_way, save_result
from ._workers import (
    FormError,
    Job,
    JobCallbacks,
    JobControls,
    call_as_job,
    describe_failure,
    notify_failure,
)

if TYPE_CHECKING:
    import napari


class SegmentWidget(ScrollingDock):
    """Choose an image layer, a model, a device and a threshold; Segment runs off the GUI thread."""

    def __init__(self, viewer: napari.viewer.Viewer, *, synchronous: bool | None = None) -> None:
        self._viewer = viewer
        #: The settings, by name (``form["model"]``; see :class:`SegmentForm`).
        self.form = SegmentForm(viewer)
        #: Segment and Cancel, the progress bar and the status line.
        self.controls = JobControls(
            "Segment",
            "Run OCTA-Net on the image layer; the viewer stays usable, and results go to the "
            "'<image> vessel probability' and '<image> vessels' layers",
            synchronous=synchronous,
        )
        self._results = ResultLayers(viewer, self.form.otsu_info)
        super().__init__(Container(widgets=[self.form.container, self.controls], labels=False))
        #: The slices and layers segmented here, flagged first, then least confident first.
        self.queue = ReviewQueue(self.go_to)
        self.body.native.layout().addWidget(self.queue)
        self._connect(viewer)
        self._models = ModelListener(self.native, self.form.model, self._on_model_registered, self._on_model_trained)
        self._probe = self._start_device_probe(synchronous)
        self.native.installEventFilter(DockEvents(self.native, on_undocked=self._on_undocked))
        self.native.destroyed.connect(self._on_destroyed)
        FitViewUntilMoved(self.native, viewer)

    # -- wiring -------------------------------------------------------------------------------

    def _connect(self, viewer: napari.viewer.Viewer) -> None:
        form = self.form
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(form.image.reset_choices)
        viewer.layers.events.removed.connect(self._forget_removed_images)
        for setting in (form.threshold, form.level, form.specks):
            setting.changed.connect(lambda: self._results.apply_mask_rule(*form.mask_rule()))
        form.coarse.changed.connect(lambda show: self._results.show_coarse() if show else None)
        form.correct.changed.connect(self.make_corrections_layer)
        form.save.changed.connect(self._ask_folder_and_save)
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

    # -- models -------------------------------------------------------------------------------

    def select_model(self, spec: str | Path) -> None:
        """Choose a registered model by name, or else a checkpoint file by path (for scripts and docks)."""
        self.form.select_model(spec)

    def _on_model_registered(self, entry: ModelEntry) -> None:
        """A model registered meanwhile (already listed) is selected if nothing usable was."""
        if not self.form.has_usable_model():
            self.form.model.value = entry.name

    def _on_model_trained(self, trained: TrainedModel) -> None:
        """Select the new model and, if asked, segment the image it was trained on again (cellpose's loop)."""
        self.select_model(trained.name)
        image = next((layer for layer in self.form.image_layers() if layer.name == trained.image), None)
        if self.form.rerun_after_training.value and image is not None and not self.controls.running:
            self.form.image.value = image
            self.segment()

    # -- devices ------------------------------------------------------------------------------

    def _start_device_probe(self, synchronous: bool | None) -> Job[None, DeviceReport]:
        """Look for GPUs in a worker: it imports torch, which would freeze the viewer for seconds."""
        callbacks: JobCallbacks[None, DeviceReport] = JobCallbacks(
            on_result=self.form.show_devices,
            on_error=lambda error: notify_failure("Checking this machine's devices", error),
        )
        probe = Job(call_as_job(probe_devices), callbacks, synchronous=synchronous)
        probe.start()
        return probe

    # -- running ------------------------------------------------------------------------------

    def segment(self) -> None:
        """Check the form, copy the pixels, and start the job; a form problem becomes an error notification,
        and the status line's too (it would otherwise still show the last run's "Done")."""
        try:
            read = self.form.read()
        except (FormError, ModelNotFoundError) as error:
            notifications.show_error(str(error))
            self.controls.show_status(f"Not started: {error}")
            return
        placement = Placement.of(read.layer)  # now: the layer may move or go during the run
        self.controls.start(
            segment_job(read.request),
            on_result=lambda outcome: self._on_segmented(read, placement, outcome),
            on_error=self._on_failed,
        )

    def _on_segmented(self, read: ReadForm, placement: Placement, outcome: SegmentOutcome) -> None:
        """Keep and show the result, unless its image was removed during the run: its layers would come back."""
        if not self._results.in_viewer(placement):
            self.controls.show_status(f"{placement.source_name!r} was removed; its result was discarded.")
            return
        threshold, speck_size = self.form.mask_rule()
        made_with, qualities = read.made_with, outcome.qualities
        result = SegmentResult(placement, outcome.segmentation, threshold, speck_size, made_with, qualities)
        self._results.show(result, coarse=bool(self.form.coarse.value))
        self._list_for_review()
        self._report(placement.source_name, read, outcome)

    def _on_failed(self, error: Exception) -> None:
        notify_failure("Segmentation", error)
        self.controls.show_status(describe_failure("Segmentation", error))

    def _report(self, layer_name: str, read: ReadForm, outcome: SegmentOutcome) -> None:
        """Say which model made the result, which device ran it and why, and the pixel size it was given; each
        note of the core (resampling, a featureless scan, an out-of-memory fall-back) is a warning naming the
        layer as well."""
        segmentation = outcome.segmentation
        notes = segmentation.notes
        for note in notes:
            notifications.show_warning(f"Segmentation of {layer_name!r}: {note}")
        summary = (
            f"Done in {outcome.seconds:.1f} s with {read.model_name} on {segmentation.device} in "
            f"{segmentation.precision} ({outcome.device_reason}); {read.pixel_size.describe()}. "
            f"{quality_summary(outcome.qualities)}"
        )
        self.controls.show_status(summary.rstrip() + "".join(f" Note: {note}." for note in notes))

    # -- the review queue ---------------------------------------------------------------------

    def _list_for_review(self) -> None:
        """Every kept result's slices (or scan) in the queue, which shows when there is more than one."""
        self.queue.show_entries(
            entry
            for result in self._results.kept
            for entry in entries_of(result.placement, result.qualities, stack=result.is_stack)
        )

    def _forget_removed_images(self) -> None:
        self._results.forget_if_its_image_was_removed()
        self._list_for_review()

    def go_to(self, entry: ReviewEntry) -> None:
        """Make the entry's result the current one (and its image the one to segment) and show it: the stack at
        that slice, or the layer with its mask, the other queued scans hidden."""
        self._results.choose(entry.source_id)
        image = next((layer for layer in self.form.image_layers() if str(layer.unique_id) == entry.source_id), None)
        if image is not None:
            self.form.image.value = image
        queued = [result.placement.source_id for result in self._results.kept]
        if len(queued) > 1:
            show_only(self._viewer, entry.source_id, queued)
        if entry.slice_index is not None:
            go_to_slice(self._viewer, entry.placement, entry.slice_index)

    # -- corrections and saving ---------------------------------------------------------------

    def make_corrections_layer(self) -> None:
        """An editable copy of the current mask to paint on (of a stack, the slice shown); an existing corrections
        layer is never replaced."""
        current, slice_index = self._results.current, None
        if current is not None and current.is_stack:
            slice_index = shown_slice(self._viewer, current.placement, len(current.segmentation.fine))
        self._results.make_corrections_layer(slice_index)

    def _ask_folder_and_save(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        if self._results.current is None:
            notifications.show_error("Segment an image first: Save results writes its vessel mask and probability.")
            return
        folder = QFileDialog.getExistingDirectory(self.native, "Save the vessel mask and probability into")
        if folder:
            self.save_results(Path(folder))

    def save_results(self, folder: Path) -> list[Path]:
        """Write the current result's probability map, mask and record into ``folder`` as ``octanet segment`` does
        (:mod:`._segment_save`); files that exist are replaced only if the user says so. Returns the paths
        written (none if declined)."""
        result = self._results.current
        if result is None:
            notifications.show_error("Segment an image first: Save results writes its vessel mask and probability.")
            return []
        existing = files_in_the_way(result, folder)
        if existing and not self._may_replace(existing):
            self.controls.show_status("Nothing saved: the existing files were kept.")
            return []
        try:
            paths = save_result(result, folder)
        except (OSError, ValueError) as error:
            notify_failure("Saving the results", error)
            return []
        names = ", ".join(path.name for path in (*paths.outputs(), paths.record))
        self.controls.show_status(f"Saved {names} in {folder}.")
        return [*paths.outputs(), paths.record]

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
