"""``octanet models``: list the model library, or remove a model from it (``octanet models rm NAME``)."""

from __future__ import annotations

import argparse
import sys
import time


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
    from ..core.library import LibraryModel, library_models, models_dir, summarise
    from ..core.registry import bundled_checkpoints

    models = library_models()
    rows = [("NAME", "SIZE", "DATE", "VAL DICE", "PATH")]
    for bundled, path in bundled_checkpoints():
        summary = summarise(LibraryModel(bundled.name, path))
        rows.append((summary.name, _size(summary.size_bytes), "bundled", _dice(summary.val_dice), str(path)))
    for model in models:
        summary = summarise(model)
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.modified))
        rows.append((summary.name, _size(summary.size_bytes), date, _dice(summary.val_dice), str(summary.path)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    if not models:
        print(f"(no trained models in {models_dir()} yet)", file=sys.stderr)
    return 0


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
