"""``octanet models``: list the model library, or remove a model from it (``octanet models rm NAME``)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.library import LibraryModel


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list the trained models in the model library (name, size, date, val Dice, path), or remove one",
        description="The library is $NAPARI_OCTANET_MODELS, or the user data folder of napari-octanet.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    remove = actions.add_parser("rm", help="delete a model file from the library (never the bundled model)")
    remove.add_argument("name", metavar="NAME", help="the model's name, as 'octanet models' lists it")
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "rm":
        return remove(args.name, assume_yes=args.yes)
    return list_models()


def list_models() -> int:
    """Print the library; a model whose file cannot be read is listed with its problem, not left out."""
    from ..core.library import LibraryModel, library_models, models_dir
    from ..core.registry import bundled_checkpoints

    models = library_models()
    rows = [("NAME", "SIZE", "DATE", "VAL DICE", "PATH")]
    problems: list[str] = []
    for bundled, path in bundled_checkpoints():
        rows.append(_row(LibraryModel(bundled.name, path), "bundled", problems, fix="reinstall napari-octanet"))
    for model in models:
        fix = f"remove it with 'octanet models rm {shlex.quote(model.name)}'"
        rows.append(_row(model, None, problems, fix=fix))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    for problem in problems:
        print(problem, file=sys.stderr)
    if not models:
        print(f"(no trained models in {models_dir()} yet)", file=sys.stderr)
    return 0


def _row(model: LibraryModel, date: str | None, problems: list[str], *, fix: str) -> tuple[str, ...]:
    """One table row (``date`` None: the file's date).

    An unreadable checkpoint gets 'unreadable' for its Dice and a line with the problem and ``fix`` in ``problems``.
    """
    from ..core.checkpoint import CheckpointError
    from ..core.library import summarise

    try:
        summary = summarise(model)
    except (CheckpointError, OSError) as error:
        problems.append(f"{model.name}: {error}; {fix}")
        stat = model.path.stat()
        return (model.name, _size(stat.st_size), date or _date(stat.st_mtime), "unreadable", str(model.path))
    return (
        summary.name,
        _size(summary.size_bytes),
        date or _date(summary.modified),
        _dice(summary.val_dice),
        str(summary.path),
    )


def remove(name: str, *, assume_yes: bool) -> int:
    from ..core.library import find, models_dir
    from ..core.registry import BUNDLED_ALIASES, BUNDLED_MODELS, ModelNotFoundError, is_bundled

    model = find(name)
    if name in (*(m.name for m in BUNDLED_MODELS), *BUNDLED_ALIASES) or (model is not None and is_bundled(model.path)):
        raise ValueError(f"{name!r} is a bundled model, which ships with napari-octanet and is never removed")
    if model is None:
        raise ModelNotFoundError(f"no model named {name!r} in the library {models_dir()} (see 'octanet models')")
    if not assume_yes:
        if not sys.stdin.isatty():
            raise ValueError(f"removing {model.path} needs confirmation: run it in a terminal or add --yes")
        answer = input(f"Delete {model.path}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("kept", file=sys.stderr)
            return 1
    model.path.unlink()
    print(f"removed {model.name} ({model.path})")
    return 0


def _dice(val_dice: float | None) -> str:
    """The checkpoint's own validation Dice (the mean over its validation groups), or '-'."""
    return "-" if val_dice is None else f"{val_dice:.4f}"


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.1f} MB"


def _date(modified: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(modified))
