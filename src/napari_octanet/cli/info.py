"""``octanet info``: a checkpoint's configuration and provenance, as JSON."""

from __future__ import annotations

import argparse
import json


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("info", help="print a checkpoint's config and provenance as JSON")
    parser.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="checkpoint file or registered name (default: the bundled model)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..core.checkpoint import read_info
    from ..core.registry import registry

    path = registry.resolve(args.model)
    print(json.dumps({"path": str(path), **json.loads(read_info(path).to_json())}, indent=2))
    return 0
