"""``octanet export``: a lean copy of a checkpoint for sharing (no optimizer state, float16 optional)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="copy a checkpoint without training state, optionally as float16")
    parser.add_argument("model", metavar="MODEL", help="checkpoint file or registered name")
    parser.add_argument("out", type=Path, metavar="OUT", help="the new .safetensors file")
    parser.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")
    parser.add_argument("--note", default=None, help="replace the provenance note (the data's terms, say)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..core.checkpoint import load_model, save_checkpoint
    from ..core.registry import registry

    check_output(args.out, overwrite=args.overwrite)
    model = load_model(registry.resolve(args.model))
    provenance = {**model.info.provenance, "exported_from": Path(model.source).name, "float16": args.half}
    if args.note is not None:
        provenance["note"] = args.note
    save_checkpoint(args.out, model.network, provenance=provenance, half=args.half)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")
    return 0


def check_output(out: Path, *, overwrite: bool) -> None:
    """OUT must name a .safetensors file that is new (or may be replaced) in a place this process can write
    to; checked before the model is loaded (a missing folder is made when the file is written)."""
    from ..core.files import check_output_file
    from ..core.library import check_model_file_name

    check_output_file(out, overwrite=overwrite, example="model.safetensors")
    check_model_file_name(out, "OUT")
