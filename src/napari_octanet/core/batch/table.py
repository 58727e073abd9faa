"""A measures table gathered scan by scan, then written as one CSV (``octanet measure``, a batch's ``measure``).

Each scan's confidence and flags (``core.quality``) go into the columns ``measure.records.QUALITY_COLUMNS``
after ``file``; a batch learns them after measuring (they are assessed where the results are written), so
they are joined to the rows when the table is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import check_output_file
from ..measure.records import QUALITY_COLUMNS

if TYPE_CHECKING:
    import numpy as np

    from ..measure import FazSource
    from ..quality import ScanQuality


@dataclass
class MeasureTable:
    """Rows of measures (one per scan and region, named by ``file``), written as one CSV at the end."""

    out: Path
    overwrite: bool = False
    rows: list[dict[str, object]] = field(default_factory=list)
    #: Scans whose FAZ was sought but not found.
    without_faz: list[str] = field(default_factory=list)
    #: Each scan's confidence and flags, by its name (``file``); its quality columns are empty without.
    quality: dict[str, ScanQuality] = field(default_factory=dict)

    @classmethod
    def checked(cls, out: Path, *, overwrite: bool) -> MeasureTable:
        """A table for ``out``, refused now if the CSV could not be written there at the end."""
        check_output_file(out, overwrite=overwrite, example="measures.csv")
        return cls(out, overwrite)

    def add(
        self,
        name: str,
        vessels: np.ndarray,
        *,
        scan: np.ndarray | None = None,
        faz: FazSource = "find",
        pixel_size_um: float | None = None,
        quality: ScanQuality | None = None,
    ) -> tuple[list[dict[str, object]], list[str]]:
        """Measure one 2D mask (its FAZ found with the help of ``scan`` unless ``faz`` says otherwise), with
        the scan's ``quality`` where known (or given later, in ``self.quality``); returns its rows (without
        the quality columns) and the notes for the user on it."""
        from ..measure import measure_scan

        measures = measure_scan(vessels, scan=scan, pixel_size_um=pixel_size_um, faz=faz)
        if isinstance(faz, str) and measures.faz_mask is None:
            self.without_faz.append(name)
        rows = measures.rows(file=name)
        self.rows += rows
        if quality is not None:
            self.quality[name] = quality
        return rows, measures.notes

    def write(self) -> Path:
        """Write the CSV (checked again: a file may have appeared there meanwhile)."""
        from ..measure import write_csv

        check_output_file(self.out, overwrite=self.overwrite, example="measures.csv")
        rows = [{"file": row["file"], **quality_cells(self.quality.get(str(row["file"]))), **row} for row in self.rows]
        return write_csv(rows, self.out)


def quality_cells(quality: ScanQuality | None) -> dict[str, object]:
    """A scan's QUALITY_COLUMNS: its confidence and its flags' names ('motion; blink'), None (empty) where unknown."""
    if quality is None:
        return dict.fromkeys(QUALITY_COLUMNS)
    return dict(zip(QUALITY_COLUMNS, (quality.to_dict()["confidence"], quality.flag_names()), strict=True))
