"""``octanet measure``: vessel and FAZ measures of scans (segmented here) or of vessel masks, as one CSV.

One row per image and region (``file``, ``region``, then the measures; see the README's
*Measurements*). The CSV is written atomically and never over an existing file without
``--overwrite``; where it goes is checked before any work. A file that cannot be measured is
reported at the end without stopping the batch, as in ``octanet segment``. :func:`add_measure_options`
and :class:`MeasureTable` also serve ``octanet segment --measure``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.files import ensure_writable_folder
from ..core.measure import write_csv
from ..core.thresholds import DEFAULT_SPECK_SIZE
from ._common import (
    add_mask_options,
    add_model_options,
    load_model_for,
    mixed_precision_of,
    report_failure,
    summarise_failures,
)
from ._errors import USER_ERRORS

if TYPE_CHECKING:
    import numpy as np

    from ..core.measure import FazSource

FOV_HELP = (
    "width of the scan in mm (e.g. 3 for OCTA-500 3M, 6 for 6M), for measures in mm and µm and the ETDRS rings; "
    "without it every measure is in pixels"
)
#: What a user of the command line can do about a FAZ that was not found.
FAZ_HINT = (
    "draw the FAZ of each as a mask (nonzero = FAZ) named like its scan, put them in a folder, "
    "and run octanet measure again with --faz FOLDER"
)
#: Of the segmenting options, those that are harmless with --masks too (``--threads``).
NOT_SEGMENTING = ("threads",)


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
    _add_segmenting_options(parser)
    parser.set_defaults(run=run)


def _add_segmenting_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how a scan becomes a vessel mask (meaningless with --masks)."""
    add_model_options(parser)
    add_mask_options(parser, speck_size=DEFAULT_SPECK_SIZE)


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
    #: Images whose FAZ was sought but not found.
    without_faz: list[str] = field(default_factory=list)

    @classmethod
    def checked(cls, out: Path, fov_mm: float | None, *, overwrite: bool) -> MeasureTable:
        """A table for ``out``, refused now if the CSV could not be written there at the end."""
        from ..core.measure import check_fov

        check_csv_output(out, overwrite)
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
        if isinstance(faz, str) and measures.faz_mask is None:
            self.without_faz.append(name)
        rows = measures.rows(file=name)
        self.rows += rows
        return rows

    def write(self) -> Path:
        """Write the CSV; first say, once, what to do about the images without a FAZ."""
        if self.without_faz:
            print(f"warning: no FAZ found in {len(self.without_faz)} image(s): {FAZ_HINT}", file=sys.stderr)
        check_csv_output(self.out, self.overwrite)
        return write_csv(self.rows, self.out)


def check_csv_output(out: Path, overwrite: bool) -> None:
    """``out`` must be a file that may be written: not a folder, not an existing file without
    ``overwrite``, in a folder this process can write to (or make)."""
    if out.is_dir():
        raise FileExistsError(f"--out {out} is a folder; give a file name for the CSV, such as {out / 'measures.csv'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out, or add --overwrite to replace it")
    ensure_writable_folder(out.parent, create=False)


def run(args: argparse.Namespace) -> int:
    from .segment import input_files

    _check_options(args)
    table = MeasureTable.checked(args.out, args.fov_mm, overwrite=args.overwrite)
    if args.fov_mm is None:
        print("note: no --fov-mm: every measure is in pixels (units column 'px')", file=sys.stderr)
    files = input_files(args.inputs, masks=args.masks)
    prepare = _mask_and_scan(args.scans) if args.masks else _segmenter(args)
    failures: list[str] = []
    for path in files:
        try:
            image = prepare(path)
            given = None if args.faz is None else read_matching(path, args.faz)
            faz = given if given is not None else ("find" if image.scan is not None else None)
            rows = table.add(path.name, image.vessels, scan=image.scan, faz=faz)
        except USER_ERRORS as error:
            report_failure(path, error, failures)
            continue
        print(f"{path}: {len(rows)} region(s), VAD {rows[0]['vad']:.1f} %")
    if table.rows:
        print(f"measures -> {table.write()}")
    return summarise_failures(failures, len(files))


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that would be ignored, and folders that are not there, before any work."""
    if args.scans is not None and not args.masks:
        raise ValueError("--scans goes with --masks (scans given as INPUT are segmented and measured with their FAZ)")
    if args.masks:
        defaults = argparse.ArgumentParser()
        _add_segmenting_options(defaults)
        given = [
            f"--{name.replace('_', '-')}"
            for name, default in vars(defaults.parse_args([])).items()
            if name not in NOT_SEGMENTING and getattr(args, name) != default
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)}: only for scans, which are segmented here; --masks measures the masks as they "
                "are (leave these out, or give the scans without --masks)"
            )
    for option, folder in (("--scans", args.scans), ("--faz", args.faz)):
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"{option} {folder} is not a folder")


@dataclass(frozen=True)
class _Image:
    """A vessel mask to measure, and the scan its FAZ is found in (None: none known)."""

    vessels: np.ndarray
    scan: np.ndarray | None = None


def _mask_and_scan(scans: Path | None) -> Callable[[Path], _Image]:
    """Read a mask (nonzero = vessel), with its scan from ``scans`` where given."""
    from ..core.imageio import read_image

    def prepare(path: Path) -> _Image:
        mask = read_image(path)
        return _Image(mask, None if scans is None else read_matching(path, scans))

    return prepare


def _segmenter(args: argparse.Namespace) -> Callable[[Path], _Image]:
    """Read a scan and make its vessel mask with the model (--model, --threshold, --speck-size), saying the
    model's notes (a featureless scan, a move to the CPU) for that file."""
    from ..core.imageio import read_image
    from ..core.inference import segment
    from ..core.thresholds import binarise, parse_threshold

    threshold = parse_threshold(args.threshold)
    model, choice = load_model_for(args)

    def prepare(path: Path) -> _Image:
        scan = read_image(path)
        maps = segment(model, scan, device=choice.device, tta=args.tta, mixed_precision=mixed_precision_of(args))
        for note in maps.notes:
            print(f"warning: {path}: {note}", file=sys.stderr)
        return _Image(binarise(maps.fine, threshold, args.speck_size), scan)

    return prepare


def match_key(path: Path) -> str:
    """The stem that names an image's scan and FAZ: a mask ``<stem>_vessels.png`` (what ``octanet segment``
    writes) belongs to the scan ``<stem>.png``."""
    from .segment import MASK_SUFFIX

    return path.name.removesuffix(MASK_SUFFIX) if path.name.endswith(MASK_SUFFIX) else path.stem


def read_matching(path: Path, folder: Path) -> np.ndarray:
    """The image in ``folder`` named like ``path`` (see :func:`match_key`); an error naming both if there is
    none. The tool's own results in ``folder`` are never matches."""
    from ..core.imageio import IMAGE_SUFFIXES, read_image
    from .segment import OUTPUT_SUFFIXES

    key = match_key(path)
    matches = sorted(
        p
        for p in folder.iterdir()
        if p.stem == key and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.endswith(OUTPUT_SUFFIXES)
    )
    if not matches:
        raise FileNotFoundError(f"no image named {key}.* in {folder} for {path}")
    return read_image(matches[0])
