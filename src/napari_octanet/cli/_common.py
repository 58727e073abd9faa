"""Options and helpers shared by several ``octanet`` commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..core.devices import DEVICE_CHOICES
from ..core.thresholds import parse_speck_size

if TYPE_CHECKING:
    from ..core.checkpoint import LoadedModel
    from ..core.devices import DeviceChoice
    from ..core.progress import Progress

R = TypeVar("R")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="'default' (the bundled lite model), a registered name, or a checkpoint file (.safetensors)",
    )
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} or e.g. cuda:1")
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


def add_mask_options(parser: argparse.ArgumentParser, speck_size: int) -> None:
    """``--threshold`` and ``--speck-size``: how a probability map becomes the vessel mask."""
    parser.add_argument("--threshold", default="otsu", help="'otsu' (the paper) or a probability in (0, 1)")
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


def model_path_of(args: argparse.Namespace) -> Path:
    """The checkpoint --model names; an unknown name raises ModelNotFoundError listing the known ones."""
    from ..core.registry import registry

    return registry.resolve(args.model)


def load_model_for(args: argparse.Namespace) -> tuple[LoadedModel, DeviceChoice]:
    """Resolve --model through the registry and load it on --device, saying which device runs."""
    from ..core.checkpoint import load_model
    from ..core.devices import precision_name, resolve_device, uses_fast_precision

    apply_threads(args)
    choice = resolve_device(args.device)
    path = model_path_of(args)
    model = load_model(path, choice.device)
    precision = precision_name(choice.device, uses_fast_precision(mixed_precision_of(args)))
    print(f"model: {path} ({model.info.network.name}); device: {choice}; {precision}", file=sys.stderr)
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
    from ._errors import error_line

    text = error_line(error)
    text = text if str(path) in text else f"{path}: {text}"
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
