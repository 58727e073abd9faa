"""The ``octanet`` command line: segment, evaluate, train and inspect checkpoints."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from . import evaluate, export, info, measure, models, segment, train

COMMANDS = (segment, evaluate, train, info, export, models, measure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octanet", description="OCTA-Net retinal vessel segmentation for OCT-angiography images."
    )
    parser.add_argument("--version", action="version", version=f"napari-octanet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; user errors print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    from ._errors import USER_ERRORS, error_line

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args.run(args) or 0)
    except USER_ERRORS as error:
        print(f"octanet {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"octanet {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(message: Warning | str, *_: object, **__: object) -> None:
    """A warning (an image read in an unusual way, say) as one line ``warning: ...``, not Python's two."""
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
