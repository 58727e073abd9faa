"""The "Measure vessels" dock: OCTA vessel and FAZ measures of a vessel Labels layer, as a table and CSV.

A thin adapter over :mod:`napari_octanet.core.measure`. *Find FAZ* adds an editable
``<image> FAZ`` Labels layer; *Measure* uses that layer as it is (the user's corrections
included), finding the FAZ first where there is none; results fill the table, the vessel layer's
``features`` (label 1, whole scan) and an ``ETDRS rings`` Shapes layer. A FAZ layer the user
edited is never overwritten: finding the FAZ again then adds a new layer. A stack is measured
slice by slice: one table column per slice and region (the CSV: one row each, with a ``slice``
column), a FAZ stack, rings on every slice. The pixel size is the vessel (or scan) layer's scale
where it states one, else the pixel-size field the docks share (:mod:`._pixel_size`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton
from napari.layers import Image, Labels, Layer, Shapes
from napari.utils import notifications

from napari_octanet.core.measure import (
    FazSource,
    MeasureJob,
    Ring,
    ScanMeasures,
    find_faz,
    iter_measure,
    write_csv,
)

from ._combos import narrow
from ._layers import TAG, is_output
from ._measure_table import fill, measures_table
from ._pixel_size import PixelSize, PixelSizeField
from ._scrolling import ScrollingDock
from ._workers import FormError, JobControls, describe_failure, notify_failure

if TYPE_CHECKING:
    import napari

FAZ_ROLE, RINGS_ROLE = "faz", "etdrs rings"
SCAN_TIP = (
    "The grey OCTA scan the vessel mask was made from, needed to find the FAZ: without it Measure leaves "
    "the FAZ out, and Find FAZ looks in the mask alone, which has too few capillaries around the FAZ "
    "to be reliable (a hand-drawn mask often gives no FAZ)"
)


@dataclass(frozen=True)
class MeasureRequest:
    """Copies of the pixels and the settings, taken on the GUI thread before the job starts.

    ``vessels`` (and ``scan``, and ``faz`` when it is a mask) are 2D, or stacks of 2D slices.
    """

    vessels: np.ndarray
    scan: np.ndarray | None
    pixel_size_um: float | None
    faz: FazSource

    def jobs(self) -> list[MeasureJob]:
        """One core job per 2D slice (one for a 2D layer), named for the progress line (no layer name: see
        :meth:`MeasureWidget._on_measured`)."""
        count = _depth(self.vessels)
        return [
            MeasureJob(
                "the mask" if count == 1 else f"slice {i + 1} of {count}",
                _plane(self.vessels, i),
                scan=_plane(self.scan, i),
                pixel_size_um=self.pixel_size_um,
                faz=_plane(self.faz, i),
            )
            for i in range(count)
        ]


def _plane(data: Any, index: int) -> Any:
    """Slice ``index`` of a stack; a 2D array, or a setting such as 'find' or None, stands for every slice."""
    return data[index] if isinstance(data, np.ndarray) and data.ndim == 3 else data


def _checksum(data: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(data).tobytes()).hexdigest()


def _tag(layer: Layer) -> Mapping[str, object]:
    tag = layer.metadata.get(TAG)
    return tag if isinstance(tag, Mapping) else {}


class MeasureWidget(ScrollingDock):
    """Pick the vessel layer, the scan and the pixel size; Find FAZ, Measure, Export CSV."""

    def __init__(self, viewer: napari.viewer.Viewer, *, synchronous: bool | None = None) -> None:
        self._viewer = viewer
        self._measures: list[ScanMeasures] | None = None
        self._source_name = ""
        self._vessels = ComboBox(
            name="vessels",
            choices=self._labels_choices,
            tooltip="Vessel mask: a 2D Labels layer, 0 = background, anything else = vessel",
        )
        self._scan = ComboBox(
            name="scan",
            choices=self._image_choices,
            nullable=True,
            tooltip=SCAN_TIP,
        )
        #: The viewer's shared pixel size, for layers whose scale states none.
        self.pixel_size = PixelSizeField(viewer)
        for combo in (self._vessels, self._scan):
            narrow(combo)
        self._find_button = PushButton(text="Find FAZ", tooltip="Add an editable '<image> FAZ' Labels layer")
        self._export_button = PushButton(text="Export CSV…", tooltip="Save the table as CSV", enabled=False)
        self.controls = JobControls(
            "Measure",
            "Measure the vessel layer (and the FAZ layer, as you corrected it) in the whole scan and ETDRS rings",
            synchronous=synchronous,
        )
        #: The last measures: a row per measure, a column per region (and slice).
        self.table = measures_table()
        #: The settings, by name: vessels, scan, pixel_size, pixel_size_note.
        self.form = Container(
            widgets=[self._vessels, self._scan, self.pixel_size.spin_box, self.pixel_size.note, self._find_button]
        )
        super().__init__(Container(widgets=[self.form, self.controls, self.table, self._export_button], labels=False))
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.form.reset_choices)
            event.connect(lambda: self._suggest_scan(replace=False))
        self._vessels.changed.connect(lambda: self._suggest_scan(replace=True))
        for choice in (self._vessels, self._scan):
            choice.changed.connect(self._show_pixel_size_source)
        self._suggest_scan(replace=False)
        self._show_pixel_size_source()
        self._find_button.changed.connect(self.find_faz)
        self.controls.run_button.changed.connect(self.measure)
        self._export_button.changed.connect(self._ask_and_export)

    # -- choices ------------------------------------------------------------------------------

    def _labels_choices(self, _: ComboBox) -> list[tuple[str, Labels]]:
        layers = self._viewer.layers
        return [
            (layer.name, layer) for layer in layers if isinstance(layer, Labels) and _tag(layer).get("role") != FAZ_ROLE
        ]

    def _image_choices(self, _: ComboBox) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _suggest_scan(self, *, replace: bool) -> None:
        """Choose the vessel mask's scan, if one is known: filling an empty choice, or (``replace``) following
        a new vessel choice."""
        scan = self._scan_of(self._vessels.value)
        if scan is not None and (replace or self._scan.value is None):
            self._scan.value = scan

    def _show_pixel_size_source(self) -> None:
        self.pixel_size.show_source(self._vessels.value, self._scan.value)

    def _scan_of(self, vessels: Labels | None) -> Image | None:
        """The image the mask was made from (its tag names it), else the only input image that fits it."""
        if vessels is None:
            return None
        fitting = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Image) and not layer.rgb and layer.data.shape == vessels.data.shape
        ]
        source = _tag(vessels).get("source")
        made_from = [image for image in fitting if str(image.unique_id) == source]
        inputs = [image for image in fitting if not is_output(image)]
        return made_from[0] if made_from else inputs[0] if len(inputs) == 1 else None

    # -- reading the form ---------------------------------------------------------------------

    def _vessel_layer(self) -> Labels:
        layer = self._vessels.value
        if layer is None:
            raise FormError("No vessel Labels layer: segment the scan first (Segment vessels dock) or open a mask.")
        if np.ndim(layer.data) not in (2, 3):
            raise FormError(
                f"Layer {layer.name!r} has shape {np.shape(layer.data)}: measures take a 2D mask or a stack "
                "of them (N, H, W)."
            )
        return layer

    def _scan_pixels(self, vessels: Labels) -> np.ndarray | None:
        scan = self._scan.value
        if scan is None:
            return None
        if scan.rgb or tuple(scan.data.shape) != tuple(vessels.data.shape):
            raise FormError(
                f"The scan {scan.name!r} is {scan.data.shape} but the vessel layer is {vessels.data.shape}: "
                "choose the grey scan the mask was made from."
            )
        return np.array(scan.data, dtype=np.float64)

    def _pixel_size(self, vessels: Labels) -> PixelSize:
        """The vessel layer's pixel size, else the scan's, else the field's (see :mod:`._pixel_size`)."""
        self._show_pixel_size_source()
        return self.pixel_size.for_layers(vessels, self._scan.value)

    def _faz_layer(self, vessels: Labels) -> Labels | None:
        """The newest FAZ layer made for this vessel layer (the user's corrections included)."""
        found = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Labels) and _tag(layer).get("source") == str(vessels.unique_id)
            if _tag(layer).get("role") == FAZ_ROLE
        ]
        return found[-1] if found else None

    # -- actions ------------------------------------------------------------------------------

    def find_faz(self) -> None:
        """Find the FAZ now (a fraction of a second) and show it as an editable Labels layer."""
        try:
            vessels = self._vessel_layer()
            scan, pixel_size = self._scan_pixels(vessels), self._pixel_size(vessels).um
            mask = np.asarray(vessels.data) != 0  # nonzero = vessel, as in the core (measure.as_mask)
            found = [find_faz(_plane(mask, i), _plane(scan, i), pixel_size) for i in range(_depth(mask))]
        except ValueError as error:
            self._refuse(error)
            return
        masks = [result.mask for result in found]
        if all(faz is None for faz in masks):
            notifications.show_warning(found[0].message if len(found) == 1 else "No FAZ found on any slice.")
            return
        planes = [np.zeros(mask.shape[-2:], bool) if faz is None else faz for faz in masks]
        self._write_faz(vessels, planes[0] if mask.ndim == 2 else np.stack(planes))
        summary = found[0].message if len(found) == 1 else f"FAZ found on {sum(m is not None for m in masks)} slice(s)"
        notifications.show_info(f"{summary}. Correct it with the Labels tools if needed, then Measure.")

    def measure(self) -> None:
        try:
            vessels = self._vessel_layer()
            pixel_size = self._pixel_size(vessels)
            request = self._request(vessels, pixel_size.um)
        except ValueError as error:
            self._refuse(error)
            return
        self._source_name = (self._scan.value or vessels).name
        self.controls.start(
            iter_measure(request.jobs()),
            on_result=lambda measures: self._on_measured(vessels, pixel_size, measures),
            on_error=self._on_failed,
        )

    def _refuse(self, error: ValueError) -> None:
        """A form problem: an error notification, and the status line's too (it would otherwise still say
        "Measured", beside the last measured layer's table)."""
        notifications.show_error(str(error))
        self.controls.show_status(f"Not started: {error}")

    def _request(self, vessels: Labels, pixel_size_um: float | None) -> MeasureRequest:
        scan = self._scan_pixels(vessels)
        faz_layer = self._faz_layer(vessels)
        faz: FazSource = np.array(faz_layer.data) if faz_layer else ("find" if scan is not None else None)
        return MeasureRequest(np.array(vessels.data) != 0, scan, pixel_size_um, faz)

    def _on_measured(self, vessels: Labels, pixel_size: PixelSize, measures: list[ScanMeasures]) -> None:
        self._measures = measures
        rows = self.rows()
        fill(self.table, rows)
        if len(measures) == 1:
            vessels.features = {name: [value] for name, value in {"index": 1, **rows[0]}.items()}
        faz_masks = [m.faz_mask for m in measures]
        if any(faz is not None for faz in faz_masks) and self._faz_layer(vessels) is None:
            planes = [np.zeros(vessels.data.shape[-2:], bool) if faz is None else faz for faz in faz_masks]
            self._write_faz(vessels, planes[0] if len(planes) == 1 else np.stack(planes))
        self._draw_rings(vessels, [m.rings for m in measures])
        self._export_button.enabled = True
        for index, scan_measures in enumerate(measures):
            where = f"slice {index}: " if len(measures) > 1 else ""
            for note in scan_measures.notes:
                notifications.show_warning(where + note)
        # The status line names no layer, which could widen the dock; the tooltip does.
        summary = f"Measured {len(rows)} region(s); {pixel_size.describe()}."
        self.controls.show_status(summary, tooltip=f"{summary} Layer {vessels.name!r}.")

    def rows(self) -> list[dict[str, object]]:
        """The last measures as the CSV has them: one row per region (and slice, for a stack); none before."""
        if self._measures is None:
            return []
        if len(self._measures) == 1:
            return self._measures[0].rows(file=self._source_name)
        return [row for index, m in enumerate(self._measures) for row in m.rows(file=self._source_name, slice=index)]

    def _on_failed(self, error: Exception) -> None:
        notify_failure("Measuring", error)
        self.controls.show_status(describe_failure("Measuring", error))

    # -- layers -------------------------------------------------------------------------------

    def _write_faz(self, vessels: Labels, mask: np.ndarray) -> Labels:
        """Update our own unedited FAZ layer, or add a new one: a FAZ the user edited is never overwritten."""
        data = mask.astype(np.uint8)
        layer = self._faz_layer(vessels)
        tag = {"source": str(vessels.unique_id), "role": FAZ_ROLE, "written": _checksum(data)}
        if layer is not None and _tag(layer).get("written") == _checksum(np.asarray(layer.data)):
            layer.data = data
            layer.metadata = {**layer.metadata, TAG: tag}
            return layer
        name = f"{(self._scan.value or vessels).name} FAZ"
        return self._viewer.add_labels(
            data, name=name, scale=vessels.scale, translate=vessels.translate, metadata={TAG: tag}, opacity=0.5
        )

    def _draw_rings(self, vessels: Labels, rings_by_slice: list[list[Ring]]) -> None:
        """Outline each ring's outer edge (the fovea's is the parafovea's inner edge) as ellipses, on its slice."""
        stacked = len(rings_by_slice) > 1
        outlines = [
            _on_slice(_circle(ring.centre, ring.outer_px), index) if stacked else _circle(ring.centre, ring.outer_px)
            for index, rings in enumerate(rings_by_slice)
            for ring in rings
        ]
        existing = next(
            (
                layer
                for layer in self._viewer.layers
                if isinstance(layer, Shapes)
                and _tag(layer).get("source") == str(vessels.unique_id)
                and _tag(layer).get("role") == RINGS_ROLE
            ),
            None,
        )
        if existing is not None:
            existing.data = outlines
            existing.shape_type = ["ellipse"] * len(outlines)
            return
        if outlines:
            self._viewer.add_shapes(
                outlines,
                shape_type="ellipse",
                name=f"{(self._scan.value or vessels).name} ETDRS rings",
                edge_color="yellow",
                face_color="transparent",
                edge_width=1.5,
                scale=vessels.scale,
                translate=vessels.translate,
                metadata={TAG: {"source": str(vessels.unique_id), "role": RINGS_ROLE}},
            )

    # -- export -------------------------------------------------------------------------------

    def _ask_and_export(self) -> None:
        """Qt's save dialog asks before replacing a file, so a path it returns may be overwritten."""
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Export measures", "measures.csv", "CSV (*.csv)")
        if path:
            self.export_csv(Path(path), overwrite=True)

    def export_csv(self, path: Path, *, overwrite: bool = False) -> bool:
        """Write the last measures as CSV; an existing file is kept unless ``overwrite`` (confirmed)."""
        if self._measures is None:
            notifications.show_error("Nothing to export yet: press Measure first.")
            return False
        if path.exists() and not overwrite:
            notifications.show_error(
                f"{path} exists and was kept: choose another name (Export CSV asks before replacing)."
            )
            return False
        try:
            write_csv(self.rows(), path)
        except (ValueError, OSError) as error:
            notifications.show_error(f"Export failed: {error}")
            return False
        self.controls.show_status("Saved the CSV file.", tooltip=f"Saved {path}.")  # see _on_measured
        return True


def _depth(data: np.ndarray) -> int:
    """How many 2D slices a layer's data holds."""
    return len(data) if data.ndim == 3 else 1


def _on_slice(corners: np.ndarray, index: int) -> np.ndarray:
    """2D corners placed on slice ``index`` of a stack (a leading coordinate)."""
    return np.column_stack([np.full(len(corners), index), corners])


def _circle(centre: tuple[float, float], radius: float) -> np.ndarray:
    """The bounding box corners napari takes for an ellipse."""
    row, col = centre
    return np.array(
        [
            [row - radius, col - radius],
            [row - radius, col + radius],
            [row + radius, col + radius],
            [row + radius, col - radius],
        ]
    )
