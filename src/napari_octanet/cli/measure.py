"""``octanet measure``: vessel and FAZ measures of scans (segmented here) or of vessel masks, as one CSV.

One row per image and region (``file``, ``region``, then the measures; see the README's
*Measurements*). The CSV is written atomically and never over an existing file without
``--overwrite``. :func:`add_measure_options` and :class:`MeasureTable` also serve
``octanet segment --measure``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.measure import write_csv
from ..core.thresholds import DEFAULT_SPECK_SIZE
from ._common import add_mask_options, add_model_options, load_model_for, mixed_precision_of

if TYPE_CHECKING:
    import numpy as np

    from ..core.measure import FazSource

FOV_HELP = (
    "width of the scan in mm (e.g. 3 for OCTA-500 3M, 6 for 6M), for measures in mm and µm and the ETDRS rings; "
    "without it every measure is in pixels"
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "measure", help="vessel density, length, calibre, tortuosity and FAZ of OCTA scans or masks, as CSV"
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="scans (segmented first), or with --masks vessel masks; or folders"
    )
    parser.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    parser.add_argument("--fov-mm", type=float, default=None, help=FOV_HELP)
    parser.add_argument(
        "--masks", action="store_true", help="the inputs are vessel masks (nonzero = vessel), not scans"
    )
    parser.add_argument(
        "--scans",
        type=Path,
        default=None,
        help="with --masks: a folder of the matching scans (same file stem), for the FAZ columns",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_model_options(parser)
    add_mask_options(parser, speck_size=DEFAULT_SPECK_SIZE)
    parser.set_defaults(run=run)


def add_measure_options(parser: argparse.ArgumentParser) -> None:
    """``--measure`` and ``--fov-mm``, for a command that makes masks (``octanet segment``)."""
    parser.add_argument(
        "--measure", action="store_true", help="also measure each mask and its FAZ into OUT/measures.csv"
    )
    parser.add_argument("--fov-mm", type=float, default=None, help=FOV_HELP)


def measures_for(args: argparse.Namespace, out: Path) -> MeasureTable | None:
    """The table that ``--measure`` asks for, written to ``out`` (None without ``--measure``).

    Checked before any work starts: a bad ``--fov-mm`` or an existing ``out`` is an error now.
    """
    if not args.measure:
        return None
    return MeasureTable.checked(out, args.fov_mm, overwrite=getattr(args, "overwrite", False))


@dataclass
class MeasureTable:
    """Rows of measures gathered image by image, then written as one CSV."""

    out: Path
    fov_mm: float | None
    overwrite: bool = False
    rows: list[dict[str, object]] = field(default_factory=list)

    @classmethod
    def checked(cls, out: Path, fov_mm: float | None, *, overwrite: bool) -> MeasureTable:
        from ..core.measure import check_fov

        _refuse_existing(out, overwrite)
        return cls(out, None if fov_mm is None else check_fov(fov_mm), overwrite)

    def add(
        self, name: str, vessels: np.ndarray, scan: np.ndarray | None = None, faz: FazSource = "find"
    ) -> list[dict[str, object]]:
        """Measure one 2D mask (FAZ found with the help of ``scan`` unless ``faz`` says otherwise)."""
        from ..core.measure import measure_scan, pixel_size_from_fov

        pixel_size = None if self.fov_mm is None else pixel_size_from_fov(self.fov_mm, vessels.shape[1])
        measures = measure_scan(vessels, scan=scan, pixel_size_um=pixel_size, faz=faz)
        for note in measures.notes:
            print(f"warning: {name}: {note}", file=sys.stderr)
        rows = measures.rows(file=name)
        self.rows += rows
        return rows

    def write(self) -> Path:
        _refuse_existing(self.out, self.overwrite)
        return write_csv(self.rows, self.out)


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; choose another --out, or add --overwrite to replace it")


def run(args: argparse.Namespace) -> int:
    from .segment import input_files

    if args.scans is not None and not args.masks:
        raise ValueError("--scans goes with --masks (scans given as INPUT are segmented and measured with their FAZ)")
    table = MeasureTable.checked(args.out, args.fov_mm, overwrite=args.overwrite)
    if args.fov_mm is None:
        print("note: no --fov-mm: every measure is in pixels (units column 'px')", file=sys.stderr)
    files = input_files(args.inputs)
    images = _masks_and_scans(files, args.scans) if args.masks else _segmented(files, args)
    for path, vessels, scan in images:
        rows = table.add(path.name, vessels, scan=scan, faz=None if scan is None else "find")
        print(f"{path}: {len(rows)} region(s), VAD {rows[0]['vad']:.1f} %")
    print(f"measures -> {table.write()}")
    return 0


ImageTriple = tuple[Path, "np.ndarray", "np.ndarray | None"]


def _masks_and_scans(files: list[Path], scans: Path | None) -> Iterator[ImageTriple]:
    """Each mask (nonzero = vessel) with its scan from ``scans`` (None without ``--scans``)."""
    from ..core.imageio import read_image
    from ..core.measure import vessel_mask

    for path in files:
        mask = vessel_mask(read_image(path), f"{path} (given with --masks)")
        yield path, mask, _matching_scan(path, scans)


def _segmented(files: list[Path], args: argparse.Namespace) -> Iterator[ImageTriple]:
    """Each scan with its vessel mask from the model (--model, --threshold, --speck-size), one image at a time."""
    from ..core.imageio import read_image
    from ..core.inference import segment
    from ..core.thresholds import binarise, parse_threshold

    threshold = parse_threshold(args.threshold)
    model, choice = load_model_for(args)
    for path in files:
        scan = read_image(path)
        maps = segment(model, scan, device=choice.device, tta=args.tta, mixed_precision=mixed_precision_of(args))
        yield path, binarise(maps.fine, threshold, args.speck_size), scan


def _matching_scan(mask_path: Path, scans: Path | None) -> np.ndarray | None:
    """The scan in ``scans`` with the mask's file stem; an error naming it if there is none."""
    from ..core.imageio import IMAGE_SUFFIXES, read_image

    if scans is None:
        return None
    if not scans.is_dir():
        raise FileNotFoundError(f"--scans {scans} is not a folder")
    matches = sorted(p for p in scans.iterdir() if p.stem == mask_path.stem and p.suffix.lower() in IMAGE_SUFFIXES)
    if not matches:
        raise FileNotFoundError(f"no scan named {mask_path.stem}.* in {scans} for the mask {mask_path}")
    return read_image(matches[0])
