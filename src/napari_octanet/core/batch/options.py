"""What a batch is asked to do (:class:`BatchOptions`), what it says as it goes (:class:`BatchEvent`)
and what it returns (:class:`BatchReport`). No torch here: the command line reads the defaults."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from ..progress import Progress
from ..quality import review_key
from ..scale import PixelSizeRule
from ..thresholds import DEFAULT_SPECK_SIZE, Threshold

if TYPE_CHECKING:
    from ..checkpoint import LoadedModel
    from ..quality import ScanQuality

#: A model by registered name or checkpoint file (None: the default), or one loaded already.
ModelSpec = str | os.PathLike[str] | None


@dataclass(frozen=True)
class BatchOptions:
    """How a batch of scans is segmented; the command line's defaults are these."""

    #: A registered name or a checkpoint file (None: the bundled default), or a model loaded already.
    model: ModelSpec | LoadedModel = None
    device: str = "auto"
    #: 'otsu' (the paper) or a probability in (0, 1).
    threshold: Threshold = "otsu"
    #: Pieces of the mask of at most this many pixels are dropped (0 keeps every piece).
    speck_size: int = DEFAULT_SPECK_SIZE
    #: Average the 8 rotations and flips of each scan.
    tta: bool = False
    #: Compute in float32 even where the device has a faster reduced precision.
    full_precision: bool = False
    #: Scans per forward pass.
    batch_size: int = 4
    #: Replace results that are not what this run makes (made otherwise, edited, by another version)
    #: and an existing measures table; results that are up to date are kept.
    overwrite: bool = False
    #: Every scan's pixel size (µm), or their field of view (mm); neither: each scan's folder layout
    #: where it states one (OCTA-500 3M and 6M), else unknown (the scan is taken as it is).
    pixel_size_um: float | None = None
    fov_mm: float | None = None
    #: Also measure every mask (and its FAZ) into one table, ``measures.csv`` beside the results.
    measure: bool = False

    @property
    def mixed_precision(self) -> bool | None:
        """The inference's ``mixed_precision`` setting that ``full_precision`` asks for."""
        return False if self.full_precision else None

    @property
    def pixel_sizes(self) -> PixelSizeRule:
        return PixelSizeRule(self.pixel_size_um, self.fov_mm)


#: ``info``: a line for the log; ``note``, ``warning`` and ``failure``: about the batch or one file;
#: ``written``: a scan's results (``source -> outputs``); ``progress``: nothing to say.
EventKind = Literal["progress", "info", "note", "warning", "failure", "written"]


@dataclass(frozen=True)
class BatchEvent(Progress):
    """A batch's progress (``done`` of ``total`` scans), with what to tell the user."""

    kind: EventKind = "progress"


#: How many of the unflagged scans with the lowest confidence a batch names for review (``to_check_first``).
LOWEST_SHOWN = 5

Key = TypeVar("Key", bound=Hashable)


def to_check_first(quality: Mapping[Key, ScanQuality], lowest: int = LOWEST_SHOWN) -> list[tuple[Key, ScanQuality]]:
    """Every flagged scan (a flag makes a scan unfit for measuring, whatever its confidence), then the
    ``lowest`` unflagged scans of lowest confidence; each part by confidence, lowest first."""
    ordered = sorted(quality.items(), key=lambda item: review_key(item[1]))
    flagged = [item for item in ordered if item[1].flags]
    return flagged + [item for item in ordered if not item[1].flags][:lowest]


@dataclass
class BatchReport:
    """What a batch did: this process's share of the scans (all of them but under torchrun)."""

    scans: int
    #: Scans sent to the network, and how many of them were written.
    attempted: int = 0
    segmented: int = 0
    #: Scans whose results were up to date and kept.
    skipped: int = 0
    #: One line per scan that failed: the file and the reason.
    failures: list[str] = field(default_factory=list)
    #: Seconds spent segmenting (after the model was loaded).
    seconds: float = 0.0
    #: The measures table written (``measure``), or None.
    measures: Path | None = None
    #: The scans (by table name) whose FAZ was sought but not found.
    without_faz: list[str] = field(default_factory=list)
    #: Each scan's confidence and flags (``core.quality``), by source file: the scans segmented, and those
    #: skipped whose record keeps them.
    quality: dict[Path, ScanQuality] = field(default_factory=dict)

    def to_check_first(self, lowest: int = LOWEST_SHOWN) -> list[tuple[Path, ScanQuality]]:
        """The scans a reviewer should look at first (see :func:`to_check_first`)."""
        return to_check_first(self.quality, lowest)
