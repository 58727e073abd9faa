"""``octanet segment``: probability map and vessel mask for each input image.

The parsing and the printing of :func:`napari_octanet.core.batch.iter_segment_folder`, which does
the whole job (see :mod:`napari_octanet.core.batch`): outputs mirror the inputs' folders below their
common parent; ``SCAN_segment.json`` beside each scan's results records its source file, the
settings and the pixel size that made them; results that are up to date are kept (a long batch is
resumed by running the same command again), results made otherwise are refused unless
``--overwrite``; a file that cannot be read or segmented is reported at the end without stopping
the batch. At the end it names the scans to check first: every flagged one with its flags' reasons,
then those of lowest confidence (``core.quality``, docs/confidence.md).
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
    apply_threads,
    positive_int,
    print_event,
    summarise_failures,
)

if TYPE_CHECKING:
    from ..core.batch import BatchOptions, BatchReport


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment OCTA images and write probability maps and masks")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or folders of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the outputs (mirrors the input folders)")
    add_model_options(parser)
    add_mask_options(parser)
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size, help="slices per forward pass")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="rewrite the results that are not what this run makes (made from another file or with other "
        "settings, by another version, or edited since) and replace OUT/measures.csv; results that are up to "
        "date are kept",
    )
    parser.add_argument(
        "--measure", action="store_true", help="also measure each mask and its FAZ into OUT/measures.csv"
    )
    add_pixel_size_options(parser, "for segmenting at the model's working size and for the measures' units")
    parser.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> BatchOptions:
    """The core batch's options that the command line gives."""
    from ..core.batch import BatchOptions

    return BatchOptions(
        model=args.model,
        device=args.device,
        threshold=args.threshold,
        speck_size=args.speck_size,
        tta=args.tta,
        full_precision=args.full_precision,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        pixel_size_um=args.pixel_size_um,
        fov_mm=args.fov_mm,
        measure=args.measure,
    )


def run(args: argparse.Namespace) -> int:
    from ..core.batch import iter_segment_folder, measures_path

    apply_threads(args)
    batch = iter_segment_folder(args.inputs, args.out, options_from(args))
    try:
        while True:
            print_event(next(batch))
    except StopIteration as finished:
        report = finished.value
    except KeyboardInterrupt:
        if not args.measure:
            raise
        print(
            f"octanet segment: interrupted; {measures_path(args.out)} was not written (the results so far are "
            "kept: run the same command again to finish the batch and measure every image)",
            file=sys.stderr,
        )
        return 130
    if report.attempted:
        rate = f"segmented {report.segmented} image(s) in {report.seconds:.1f} s: "
        rate += f"{report.segmented / report.seconds:.2f} images/s"
        print(rate if report.segmented else "no image was segmented: each one failed", file=sys.stderr)
    if report.without_faz:
        print(f"warning: no FAZ found in {len(report.without_faz)} image(s): {FAZ_HINT}", file=sys.stderr)
    if report.measures is not None:
        print(f"measures -> {report.measures}")
    print_scans_to_check(report)
    return summarise_failures(report.failures, report.scans)


def print_scans_to_check(report: BatchReport) -> None:
    """One block on stdout: every flagged scan with its flags' reasons, then the unflagged scans of lowest
    confidence (``BatchReport.to_check_first``), each with its confidence."""
    listed = report.to_check_first()
    if not listed:
        return
    flagged = sum(1 for _, checked in listed if checked.flags)
    parts = [f"{flagged} flagged"] if flagged else []
    parts += [f"the {len(listed) - flagged} of lowest confidence"] if len(listed) > flagged else []
    print(f"scans to check first ({', then '.join(parts)}; confidence = predicted Dice):")
    for path, checked in listed:
        reasons = "; ".join(f"{flag.name}: {flag.reason}" for flag in checked.flags)
        print(f"  {checked.confidence:.3f}  {path}" + (f"  ({reasons})" if reasons else ""))
