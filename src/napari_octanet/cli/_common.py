"""Options and helpers shared by several ``octanet`` commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..core.batch.options import BatchOptions
from ..core.devices import DEVICE_CHOICES
from ..core.scale import PixelSizeRule
from ..core.thresholds import parse_speck_size

if TYPE_CHECKING:
    from ..core.batch.options import BatchEvent
    from ..core.checkpoint import LoadedModel
    from ..core.devices import DeviceChoice
    from ..core.progress import Progress

R = TypeVar("R")
#: The defaults of the options that say how a scan is segmented (one home: the core's options).
DEFAULTS = BatchOptions()
#: What a user of the command line can do about a FAZ that was not found.
FAZ_HINT = (
    "draw the FAZ of each as a mask (nonzero = FAZ) named like its scan, put them in a folder, "
    "and run octanet measure again with --faz FOLDER"
)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULTS.model,
        help="'default' (the bundled lite model), a registered name, or a checkpoint file (.safetensors)",
    )
    parser.add_argument("--device", default=DEFAULTS.device, help=f"one of {', '.join(DEVICE_CHOICES)} or e.g. cuda:1")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average the 8 rotations and flips of each image (8x slower, a little better)",
    )
    add_precision_option(parser)
    add_threads_option(parser)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (default: torch's choice, every core); set it when several runs share the CPU",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Give torch the CPU threads that ``--threads`` asks for, before any work starts."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full-precision",
        action="store_true",
        help="compute in float32 even where the device has a faster reduced precision "
        "(float16 on CUDA, bfloat16 on CPUs with AMX)",
    )


def mixed_precision_of(args: argparse.Namespace) -> bool | None:
    """The core's ``mixed_precision`` setting that ``--full-precision`` (or its absence) asks for."""
    return False if args.full_precision else None


def add_mask_options(parser: argparse.ArgumentParser, speck_size: int = DEFAULTS.speck_size) -> None:
    """``--threshold`` and ``--speck-size``: how a probability map becomes the vessel mask."""
    parser.add_argument("--threshold", default=DEFAULTS.threshold, help="'otsu' (the paper) or a probability in (0, 1)")
    parser.add_argument(
        "--speck-size",
        type=_speck_size,
        default=speck_size,
        metavar="PIXELS",
        help="drop pieces of the mask of at most this many pixels (8-connected); 0 keeps every piece, "
        "as the paper's protocol does (default: %(default)s)",
    )


def _speck_size(text: str) -> int:
    try:
        return parse_speck_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_pixel_size_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--pixel-size`` and ``--fov-mm``: the scans' pixel size, given or from their field of view.

    ``what`` says what the pixel size is used for by this command.
    """
    parser.add_argument(
        "--pixel-size",
        dest="pixel_size_um",
        type=float,
        default=DEFAULTS.pixel_size_um,
        metavar="UM",
        help=f"the scans' pixel size in µm (e.g. 9.87 for OCTA-500 3M), {what}; neither this nor --fov-mm: "
        "the folder's where it states one (OCTA500_3M, OCTA500_6M), else unknown",
    )
    parser.add_argument(
        "--fov-mm",
        type=float,
        default=DEFAULTS.fov_mm,
        metavar="MM",
        help="or the scans' width in mm (e.g. 3 for OCTA-500 3M, 6 for 6M), giving each scan's pixel size",
    )


def pixel_size_rule(args: argparse.Namespace) -> PixelSizeRule:
    """The pixel size options given, checked now (a bad value is a one-line error before any work)."""
    rule = PixelSizeRule(args.pixel_size_um, args.fov_mm)
    rule.check()
    return rule


def input_files(inputs: Sequence[str], *, masks: bool = False) -> list[Path]:
    """The image files ``inputs`` name (see ``core.batch.find_inputs``), saying which were left out."""
    from ..core.batch import find_inputs

    found = find_inputs(inputs, masks=masks)
    for note in found.notes:
        print(f"note: {note}", file=sys.stderr)
    return found.files


#: How each kind of a batch's events is shown: the stream, and the line's start.
_EVENT_LINES = {
    "info": ("err", ""),
    "note": ("err", "note: "),
    "warning": ("err", "warning: "),
    "failure": ("err", "error: "),
    "written": ("out", ""),
}


def print_event(event: BatchEvent) -> None:
    """Show a batch's event: results on stdout, the rest on stderr; progress alone is not shown."""
    if event.kind in _EVENT_LINES:
        stream, start = _EVENT_LINES[event.kind]
        print(f"{start}{event.message}", file=sys.stdout if stream == "out" else sys.stderr)


def load_model_for(args: argparse.Namespace) -> tuple[LoadedModel, DeviceChoice]:
    """Resolve --model through the registry and load it on --device, saying which device runs."""
    from ..core.batch import load_model_on
    from ..core.devices import resolve_device

    apply_threads(args)
    choice = resolve_device(args.device)
    model, line = load_model_on(args.model, choice, mixed_precision_of(args))
    print(line, file=sys.stderr)
    return model, choice


def follow_with_bar(generator: Generator[Progress, None, R], unit: str) -> R:
    """Run a core progress generator to its end with a tqdm bar on stderr; return its result."""
    from tqdm import tqdm

    with tqdm(unit=unit, file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            try:
                progress = next(generator)
            except StopIteration as stop:
                return stop.value
            bar.total = progress.total
            bar.set_postfix_str(progress.message, refresh=False)
            bar.update(progress.done - bar.n)


def report_failure(path: Path, error: BaseException, failures: list[str]) -> None:
    """Report a file of a batch that failed now, and keep it for the summary, naming the file once."""
    from ..core.files import failure_line

    text = failure_line(path, error)
    failures.append(text)
    print(f"error: {text}", file=sys.stderr)


def summarise_failures(failures: list[str], total: int) -> int:
    """List a batch's failed files at its end; the exit code: 1 if any failed, else 0."""
    if not failures:
        return 0
    print(f"{len(failures)} of {total} image(s) failed:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1
