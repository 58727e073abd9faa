"""``octanet segment``: probability map and vessel mask for each input image."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_model_options, load_model_for


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment OCTA images and write probability maps and masks")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or folders of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the outputs")
    add_model_options(parser)
    parser.add_argument("--threshold", default="otsu", help="'otsu' (the paper) or a probability in (0, 1)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.set_defaults(run=run)


def input_files(inputs: list[str]) -> list[Path]:
    """Expand folders to the image files they hold; a missing path is an error naming it."""
    from ..core.imageio import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) among {', '.join(inputs)}")
    return files


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile
    from skimage.io import imsave

    from ..core.imageio import read_image
    from ..core.inference import segment
    from ..core.thresholds import binarise, parse_threshold

    threshold = parse_threshold(args.threshold)
    files = input_files(args.inputs)
    model, choice = load_model_for(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in files:
        maps = segment(model, read_image(path), device=choice.device, batch_size=args.batch_size, tta=args.tta)
        mask = binarise(maps.fine, threshold)
        probability_path = args.out / f"{path.stem}_probability.tif"
        mask_path = args.out / f"{path.stem}_vessels.png"
        tifffile.imwrite(probability_path, maps.fine.astype(np.float32))
        imsave(mask_path, (mask * 255).astype(np.uint8), check_contrast=False)
        for note in maps.notes:
            print(f"warning: {note}", file=sys.stderr)
        print(f"{path} -> {probability_path.name}, {mask_path.name} ({100 * mask.mean():.1f} % vessel)")
    return 0
