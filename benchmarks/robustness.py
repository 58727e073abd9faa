"""How the bundled (or any) model holds up on real val scans stored or contrasted differently.

    python benchmarks/robustness.py DATA_ROOT [--model default] [--threads 2]

For every val split of DATA_ROOT (OCTA500_3M, OCTA500_6M, ROSSA: 304, 400 and 320 px), each image
is segmented as stored (8-bit), widened to 16-bit, as a 12-bit scan stored in uint16, as int32, as
float with one hot pixel, and with its contrast bent by gamma 0.5, 0.75, 1.5 and 2; the label stays
the same. Prints mean Dice (Otsu, no tolerance) and AUC per variant, as a Markdown table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.inference import segment
from napari_octanet.core.layouts import index_dataset, load_sample
from napari_octanet.core.metrics import evaluate_image
from napari_octanet.core.registry import registry

SPLITS = ("OCTA500_3M", "OCTA500_6M", "ROSSA")


def _gamma(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def bend(image: np.ndarray) -> np.ndarray:
        scaled = image.astype(np.float64) / np.iinfo(image.dtype).max
        return np.round(scaled**value * 255).astype(np.uint8)

    return bend


def _hot_pixel(image: np.ndarray) -> np.ndarray:
    """The scan as float32 with one pixel (the centre) 100 times brighter than the brightest."""
    hot = image.astype(np.float32)
    hot[hot.shape[0] // 2, hot.shape[1] // 2] = 100.0 * float(hot.max())
    return hot


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "8-bit as stored": lambda image: image,
    "16-bit": lambda image: image.astype(np.uint16) * 257,
    "12-bit in uint16": lambda image: (image.astype(np.uint32) * 4095 // 255).astype(np.uint16),
    "int32": lambda image: image.astype(np.int32),
    "float, one hot pixel": _hot_pixel,
    "gamma 0.5": _gamma(0.5),
    "gamma 0.75": _gamma(0.75),
    "gamma 1.5": _gamma(1.5),
    "gamma 2": _gamma(2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="default", help="a registered name or a checkpoint file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=tuple(VARIANTS), help="run these variants only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(registry.resolve(args.model))
    print("| variant | " + " | ".join(f"{s} Dice | {s} AUC" for s in SPLITS) + " |")
    print("|---" * (1 + 2 * len(SPLITS)) + "|")
    samples = {s: [load_sample(x) for x in index_dataset(args.data / s, "pairs", "val").samples] for s in SPLITS}
    for name, variant in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        cells = []
        for split in SPLITS:
            scores = [
                evaluate_image(segment(model, variant(np.asarray(s.image)), device="cpu").fine, s.label > 0)
                for s in samples[split]
            ]
            cells += [f"{np.mean([r['dice'] for r in scores]):.4f}", f"{np.mean([r['auc'] for r in scores]):.4f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
