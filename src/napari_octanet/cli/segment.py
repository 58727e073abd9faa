"""``octanet segment``: probability map and vessel mask for each input image.

Outputs mirror the inputs' folders below their common parent, so two ``scan.png`` in different
folders never share a result. Results that exist are kept and skipped (a long batch can be
resumed by running the same command again) unless ``--overwrite``; every file is written under a
temporary name and renamed, so a crash or a concurrent run never leaves half a file. The tool's
own outputs are never taken as inputs, and a file that cannot be read or segmented is reported
at the end without stopping the batch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import add_model_options, load_model_for
from ._errors import USER_ERRORS
from .measure import MeasureTable, add_measure_options, measures_for

if TYPE_CHECKING:
    import torch

    from ..core.checkpoint import LoadedModel
    from ..core.thresholds import Threshold

PROBABILITY_SUFFIX = "_probability.tif"
MASK_SUFFIX = "_vessels.png"
OUTPUT_SUFFIXES = (PROBABILITY_SUFFIX, MASK_SUFFIX)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment OCTA images and write probability maps and masks")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or folders of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the outputs (mirrors the input folders)")
    add_model_options(parser)
    parser.add_argument("--threshold", default="otsu", help="'otsu' (the paper) or a probability in (0, 1)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="slices per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="rewrite results that already exist")
    add_measure_options(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Job:
    """One input image and where its two results go."""

    source: Path
    probability: Path
    mask: Path

    def outputs(self) -> tuple[Path, Path]:
        return self.probability, self.mask


def input_files(inputs: list[str]) -> list[Path]:
    """Expand folders to the image files they hold, leaving out this tool's own results.

    Files named like a result (``*_probability.tif``, ``*_vessels.png``) are never inputs, so an
    input folder may also be ``--out``. A missing path is an error naming it.
    """
    from ..core.imageio import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    files = [path for path in files if not path.name.endswith(OUTPUT_SUFFIXES)]
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) among {', '.join(inputs)}")
    return files


def plan_jobs(files: list[Path], out: Path) -> list[Job]:
    """Each file's results in ``out``, below the same folders as the file below the inputs' common parent.

    Two inputs that would still share a name (``scan.png`` and ``scan.tif`` side by side) keep their
    suffix in it (``scan_png_…``, ``scan_tif_…``).
    """
    resolved = [path.resolve() for path in files]
    root = Path(os.path.commonpath([path.parent for path in resolved]))
    places = [(out / path.parent.relative_to(root), path.stem) for path in resolved]
    jobs = []
    for path, (folder, stem) in zip(files, places, strict=True):
        if places.count((folder, stem)) > 1:
            stem = f"{stem}_{path.suffix.lstrip('.').lower()}"
        jobs.append(Job(path, folder / f"{stem}{PROBABILITY_SUFFIX}", folder / f"{stem}{MASK_SUFFIX}"))
    return jobs


def check_output_folder(out: Path) -> None:
    """``out`` must be a folder this process can write to; checked before any model is loaded."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".octanet-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write results into {out}: {error.strerror or error}") from None


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from ..core.thresholds import parse_threshold

    threshold = parse_threshold(args.threshold)
    check_output_folder(args.out)
    jobs = plan_jobs(input_files(args.inputs), args.out)
    measures = measures_for(args, args.out / "measures.csv")
    pending = [job for job in jobs if args.overwrite or not all(p.exists() for p in job.outputs())]
    if len(pending) < len(jobs):
        print(
            f"{len(jobs) - len(pending)} image(s) already have results in {args.out}: skipped "
            "(--overwrite rewrites them)",
            file=sys.stderr,
        )
    failures: list[str] = []
    if pending:
        model, choice = load_model_for(args)
        for job in pending:
            try:
                _segment_one(job, model, choice.device, args, threshold, measures)
            except USER_ERRORS + (OSError,) as error:
                failures.append(f"{job.source}: {error}")
                print(f"error: {job.source}: {error}", file=sys.stderr)
    if measures:
        print(f"measures -> {measures.write()}")
    if failures:
        print(f"{len(failures)} of {len(jobs)} image(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def _segment_one(
    job: Job,
    model: LoadedModel,
    device: torch.device,
    args: argparse.Namespace,
    threshold: Threshold,
    measures: MeasureTable | None,
) -> None:
    import numpy as np
    import tifffile
    from skimage.io import imsave

    from ..core.imageio import read_image
    from ..core.inference import segment
    from ..core.thresholds import binarise

    image = read_image(job.source)
    maps = segment(model, image, device=device, batch_size=args.batch_size, tta=args.tta)
    mask = binarise(maps.fine, threshold)
    writers = {
        job.probability: lambda tmp: tifffile.imwrite(tmp, maps.fine.astype(np.float32)),
        job.mask: lambda tmp: imsave(tmp, (mask * 255).astype(np.uint8), check_contrast=False),
    }
    written = [path for path, write in writers.items() if args.overwrite or not path.exists()]
    for path in written:
        write_atomically(path, writers[path])
    for note in maps.notes:
        print(f"warning: {job.source}: {note}", file=sys.stderr)
    if measures:
        measures.add(job.source.name, mask, scan=image)
    names = ", ".join(str(path.relative_to(args.out)) for path in written)
    print(f"{job.source} -> {names} ({100 * mask.mean():.1f} % vessel)")
