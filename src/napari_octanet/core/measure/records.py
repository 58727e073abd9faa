"""From a vessel mask (and a scan, a pixel size, a FAZ) to one record per analysed region."""

from __future__ import annotations

import csv
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..files import write_atomically
from ..preprocess import numeric_pixels
from .faz import FazMeasures, checked_scan, faz_measures, find_faz
from .regions import WHOLE, Ring, analysed_regions, etdrs_rings
from .units import Units, check_pixel_size
from .vessels import VesselMeasures, analyse_skeleton, vessel_measures

if TYPE_CHECKING:
    from ..progress import Progress

#: ``"find"``: look for the FAZ (helped by the scan); an array: the FAZ as given (nonzero = FAZ);
#: None: no FAZ analysis, and no FAZ columns.
FazSource = np.ndarray | Literal["find"] | None

#: Column names with physical units; in pixel units ``_mm``, ``_mm2`` and ``_um`` become ``_px(2)``.
VESSEL_COLUMNS = (
    "area_mm2",
    "vad",
    "vld",
    "vdi",
    "mean_diameter_um",
    "branch_points_per_mm2",
    "segments",
    "tortuosity",
    "fractal_dimension",
)
FAZ_COLUMNS = ("faz_area_mm2", "faz_perimeter_mm", "faz_circularity", "faz_acircularity", "faz_touches_border")
#: A scan's confidence (predicted Dice) and its flags' names (``core.quality``, docs/confidence.md): the measures
#: table's columns after ``file``, on every row of the scan, empty where its quality is unknown.
QUALITY_COLUMNS = ("confidence", "flags")


@dataclass(frozen=True)
class RegionRecord:
    """The measures of one region. FAZ measures sit on the whole-scan record only."""

    region: str
    units: Units
    vessels: VesselMeasures
    faz_analysed: bool = False
    faz: FazMeasures | None = None

    def as_row(self) -> dict[str, object]:
        """Column name to value; FAZ columns only when the FAZ was analysed, empty (None) where there is none."""
        v = self.vessels
        values = (
            v.area,
            v.vad,
            v.vld,
            v.vdi,
            v.mean_diameter,
            v.branch_points_density,
            v.segments,
            v.tortuosity,
            v.fractal_dimension,
        )
        row: dict[str, object] = {"region": self.region, "units": self.units.name}
        row["pixel_size_um"] = self.units.pixel_size_um
        row.update({self.units.column(name): value for name, value in zip(VESSEL_COLUMNS, values, strict=True)})
        if self.faz_analysed:
            faz = self.faz
            faz_values = (
                (faz.area, faz.perimeter, faz.circularity, faz.acircularity, faz.touches_border)
                if faz
                else (None,) * len(FAZ_COLUMNS)
            )
            row.update({self.units.column(name): value for name, value in zip(FAZ_COLUMNS, faz_values, strict=True)})
        return row


@dataclass(frozen=True)
class ScanMeasures:
    """Every region's record of one scan, the FAZ mask used (found or given), the rings, and notes for the user."""

    records: list[RegionRecord]
    faz_mask: np.ndarray | None
    rings: list[Ring]
    notes: list[str] = field(default_factory=list)

    def rows(self, **leading: object) -> list[dict[str, object]]:
        """One table row per region, ``leading`` columns first (e.g. ``file=...``)."""
        return [{**leading, **record.as_row()} for record in self.records]


def measure_scan(
    vessels: np.ndarray,
    *,
    scan: np.ndarray | None = None,
    pixel_size_um: float | None = None,
    faz: FazSource = None,
) -> ScanMeasures:
    """Measure one 2D vessel mask (nonzero = vessel) in the whole image and, with a pixel size, ETDRS rings.

    The mask must be one (see :func:`as_mask`), and a scan must be the mask's size. Without a pixel
    size every measure is in pixels (the ``units`` column says 'px' and the column names end in
    ``_px``). Rings centre on the FAZ centroid, or on the image centre without a FAZ.
    """
    mask = as_mask(vessels)
    image = None if scan is None else checked_scan(_two_dimensional(scan, "scan"), mask.shape)
    units = Units(check_pixel_size(pixel_size_um))
    faz_mask, notes = _faz_mask(mask, image, units, faz)
    faz_found = faz_mask is not None and bool(faz_mask.any())
    faz_record = faz_measures(faz_mask, units) if faz_found else None
    if faz_record is not None and faz_record.touches_border:
        notes.append("the FAZ touches the image border: the scan cuts it off, so its area and perimeter are too small")
    rings: list[Ring] = []
    if units.physical:
        centre = faz_record.centroid if faz_record else ((mask.shape[0] - 1) / 2, (mask.shape[1] - 1) / 2)
        rings = etdrs_rings(mask.shape, centre, units.pixel_size_um)  # type: ignore[arg-type]
        if rings and faz_record is None:
            notes.append("no FAZ: the ETDRS rings are centred on the image centre instead of the FAZ")
    analysis = analyse_skeleton(mask, units.pixel_size_um)
    records = [
        RegionRecord(
            region.name,
            units,
            vessel_measures(analysis, region.mask, units),
            faz_analysed=faz is not None and region.name == WHOLE,
            faz=faz_record if region.name == WHOLE else None,
        )
        for region in analysed_regions(mask.shape, rings)
    ]
    return ScanMeasures(records, faz_mask if faz_found else None, rings, notes)


def _faz_mask(
    vessels: np.ndarray, scan: np.ndarray | None, units: Units, faz: FazSource
) -> tuple[np.ndarray | None, list[str]]:
    """The FAZ to measure and any note about it: found, given (checked), or none asked for."""
    if faz is None:
        return None, []
    if isinstance(faz, str):
        if faz != "find":
            raise ValueError(f"faz={faz!r}: pass 'find', a FAZ mask array, or None")
        found = find_faz(vessels, scan, units.pixel_size_um)
        return found.mask, ([] if found.mask is not None else [found.message])
    given = as_mask(faz, "FAZ mask")
    if given.shape != vessels.shape:
        raise ValueError(f"the FAZ mask is {given.shape} but the vessel mask is {vessels.shape}: draw it on the scan")
    return given, ([] if given.any() else ["the FAZ mask is empty: the FAZ columns are left empty"])


#: A mask holds a few values (0 and 255, or a few labels); a grey scan or a probability map holds many.
MAX_MASK_VALUES = 16


def as_mask(image: np.ndarray, what: str = "vessel mask") -> np.ndarray:
    """A 2D mask as booleans, nonzero = foreground (vessel, FAZ); an image that is no mask is refused.

    A grey scan or a probability map taken for a mask would count almost every pixel as foreground
    without a word, and a NaN is neither background nor a label.
    """
    pixels = numeric_pixels(_two_dimensional(image, what), f"the {what}")
    if not np.isfinite(pixels).all():
        raise ValueError(
            f"the {what} holds NaN or infinite values; a mask is 0 for background and a few other values: "
            "threshold the map it came from"
        )
    values = np.unique(pixels).size
    if values > MAX_MASK_VALUES:
        raise ValueError(
            f"the {what} holds {values} different values, so it is a grey scan or a probability map, not a {what} "
            "(a few values, such as 0 and 255): segment the scan first, or threshold the map"
        )
    return pixels != 0


def _two_dimensional(array: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(array)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"the {what} has shape {image.shape}; measures take one 2D image (measure stacks per slice)")
    return image


@dataclass(frozen=True)
class MeasureJob:
    """One image to measure in a batch; ``name`` is the table's ``file`` column."""

    name: str
    vessels: np.ndarray
    scan: np.ndarray | None = None
    pixel_size_um: float | None = None
    faz: FazSource = None


def iter_measure(jobs: Sequence[MeasureJob]) -> Generator[Progress, None, list[ScanMeasures]]:
    """Measure each job in turn, yielding progress after each; return their measures in order."""
    from ..progress import Progress

    results: list[ScanMeasures] = []
    yield Progress(0, len(jobs), f"measuring {len(jobs)} image(s)")
    for done, job in enumerate(jobs, start=1):
        results.append(measure_scan(job.vessels, scan=job.scan, pixel_size_um=job.pixel_size_um, faz=job.faz))
        yield Progress(done, len(jobs), f"measured {job.name}")
    return results


def write_csv(rows: Sequence[dict[str, object]], out: Path) -> Path:
    """Write rows as CSV (columns in first-seen order; None as empty), atomically (see :mod:`..files`)."""
    columns = list(dict.fromkeys(name for row in rows for name in row))

    def write(path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    return write_atomically(out, write)
