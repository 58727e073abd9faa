"""``octanet measure``: vessel and FAZ measures of scans (segmented here) or of vessel masks, as one CSV.

One row per image and region (``file``, the image's path below the inputs' common parent,
``region``, then the measures; see docs/measurements.md), gathered by
:class:`napari_octanet.core.batch.MeasureTable`. Each scan's ``confidence`` and ``flags`` columns come
from its segmentation here, or, for a mask that ``octanet segment`` wrote, from the record beside it
(empty for other masks). The CSV is written atomically and never over an
existing file without ``--overwrite``; where it goes is checked before any work. A file that cannot
be measured is reported at the end without stopping the batch, as in ``octanet segment``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import (
    DEFAULTS,
    FAZ_HINT,
    add_mask_options,
    add_model_options,
    add_pixel_size_options,
    input_files,
    load_model_for,
    mixed_precision_of,
    pixel_size_rule,
    report_failure,
    summarise_failures,
)
from ._errors import USER_ERRORS

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from ..core.quality import ScanQuality

#: The options that say how a scan becomes a vessel mask, meaningless with --masks (``--threads`` is harmless).
SEGMENTING_OPTIONS = ("model", "device", "tta", "full_precision", "threshold", "speck_size")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "measure", help="vessel density, length, calibre, tortuosity and FAZ of OCTA scans or masks, as CSV"
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="scans (segmented first), or with --masks vessel masks; or folders"
    )
    parser.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    add_pixel_size_options(parser, "for measures in mm and µm and the ETDRS rings (without one: in pixels)")
    parser.add_argument(
        "--masks", action="store_true", help="the inputs are vessel masks (nonzero = vessel), not scans"
    )
    parser.add_argument(
        "--scans",
        type=Path,
        default=None,
        help="with --masks: a folder of the matching scans (same file stem; a mask <stem>_vessels.png "
        "matches <stem>.png), for the FAZ columns",
    )
    parser.add_argument(
        "--faz",
        type=Path,
        default=None,
        help="a folder of FAZ masks (nonzero = FAZ) named like the scans, measured instead of finding the FAZ",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_model_options(parser)
    add_mask_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..core.batch import MeasureTable, names_below_common_parent
    from ..core.batch.records import quality_beside

    _check_options(args)
    rule = pixel_size_rule(args)
    table = MeasureTable.checked(args.out, overwrite=args.overwrite)
    files = input_files(args.inputs, masks=args.masks)
    scans = ImagesByStem(args.scans) if args.scans is not None else None
    fazes = ImagesByStem(args.faz) if args.faz is not None else None
    segment = None if args.masks else _segmenter(args)
    failures: list[str] = []
    in_pixels = 0
    for path, name in zip(files, names_below_common_parent(files), strict=True):
        try:
            vessels, scan = _read(path, args.masks, scans)
        except USER_ERRORS as error:
            report_failure(path, error, failures)
            continue
        pixel_size = rule.of(path, (scan if scan is not None else vessels).shape[1])  # disagreeing: exit 2
        try:
            vessels, quality = (vessels, quality_beside(path)) if segment is None else segment(path, scan, pixel_size)
            given = None if fazes is None else fazes.read(path)
            faz = given if given is not None else ("find" if scan is not None else None)
            rows, notes = table.add(name, vessels, scan=scan, faz=faz, pixel_size_um=pixel_size, quality=quality)
        except USER_ERRORS as error:
            report_failure(path, error, failures)
            continue
        in_pixels += pixel_size is None
        for note in notes:
            print(f"warning: {name}: {note}", file=sys.stderr)
        print(f"{path}: {len(rows)} region(s), VAD {rows[0]['vad']:.1f} %")
    if in_pixels:
        print(
            f"note: {in_pixels} image(s) of unknown pixel size (give --pixel-size or --fov-mm): their measures "
            "are in pixels (units column 'px')",
            file=sys.stderr,
        )
    if table.rows:
        if table.without_faz:
            print(f"warning: no FAZ found in {len(table.without_faz)} image(s): {FAZ_HINT}", file=sys.stderr)
        print(f"measures -> {table.write()}")
    return summarise_failures(failures, len(files))


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that would be ignored, and folders that are not there, before any work."""
    if args.scans is not None and not args.masks:
        raise ValueError("--scans goes with --masks (scans given as INPUT are segmented and measured with their FAZ)")
    if args.masks:
        given = [
            f"--{name.replace('_', '-')}"
            for name in SEGMENTING_OPTIONS
            if getattr(args, name) != getattr(DEFAULTS, name)
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)}: only for scans, which are segmented here; --masks measures the masks as they "
                "are (leave these out, or give the scans without --masks)"
            )
    for option, folder in (("--scans", args.scans), ("--faz", args.faz)):
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"{option} {folder} is not a folder")


def _read(path: Path, masks: bool, scans: ImagesByStem | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(vessel mask, scan) of an input: a mask with its scan from ``scans`` where given, or a scan to segment."""
    from ..core.imageio import read_image

    if not masks:
        return None, read_image(path)
    return read_image(path), (None if scans is None else scans.read(path))


def _segmenter(
    args: argparse.Namespace,
) -> Callable[[Path, np.ndarray, float | None], tuple[np.ndarray, ScanQuality]]:
    """Make a scan's vessel mask with the model (--model, --threshold, --speck-size) at its pixel size, with
    the scan's confidence and flags, saying the model's notes (a featureless scan, a move to the CPU) for that file."""
    from ..core.batch.scan import segment_scan
    from ..core.thresholds import parse_threshold

    threshold = parse_threshold(args.threshold)
    model, choice = load_model_for(args)

    def segment(path: Path, scan: np.ndarray, pixel_size_um: float | None) -> tuple[np.ndarray, ScanQuality]:
        result = segment_scan(
            model,
            scan,
            threshold=threshold,
            speck_size=args.speck_size,
            pixel_size_um=pixel_size_um,
            device=choice.device,
            tta=args.tta,
            mixed_precision=mixed_precision_of(args),
            assess_quality=True,
        )
        for note in result.notes:
            print(f"warning: {path}: {note}", file=sys.stderr)
        return result.mask, result.quality[0]  # type: ignore[return-value]

    return segment


def match_key(path: Path) -> str:
    """The stem that names an image's scan and FAZ: a mask ``<stem>_vessels.png`` (what ``octanet segment``
    writes) belongs to the scan ``<stem>.png``."""
    from ..core.batch import MASK_SUFFIX

    return path.name.removesuffix(MASK_SUFFIX) if path.name.endswith(MASK_SUFFIX) else path.stem


class ImagesByStem:
    """A folder's images by file stem, listed once; the tool's own results in it are never matches."""

    def __init__(self, folder: Path) -> None:
        from ..core.batch import OUTPUT_SUFFIXES
        from ..core.imageio import IMAGE_SUFFIXES

        self.folder = folder
        self.by_stem: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.endswith(OUTPUT_SUFFIXES):
                self.by_stem.setdefault(path.stem, path)

    def read(self, path: Path) -> np.ndarray:
        """The image named like ``path`` (see :func:`match_key`); an error naming both if there is none."""
        from ..core.imageio import read_image

        key = match_key(path)
        match = self.by_stem.get(key)
        if match is None:
            raise FileNotFoundError(f"no image named {key}.* in {self.folder} for {path}")
        return read_image(match)
