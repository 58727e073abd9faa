"""The README figure: an OCTA image, its vessel label, and the model's prediction overlaid.

    python scripts/make_figure.py IMAGE LABEL [IMAGE LABEL ...] [--model default] [--out docs/prediction.png]

Each row: the image, the label, and the Otsu-thresholded prediction over the image with true
positives in green, false positives in magenta and missed vessel pixels in yellow; the row's
Dice is printed. Built with numpy and scikit-image only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.io import imsave
from skimage.transform import resize

from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.imageio import read_image, read_label
from napari_octanet.core.inference import segment
from napari_octanet.core.metrics import binary_metrics
from napari_octanet.core.preprocess import normalise
from napari_octanet.core.registry import registry
from napari_octanet.core.thresholds import binarise

PANEL = 320
GAP = 6
TP, FP, FN = (0, 220, 70), (230, 40, 200), (255, 210, 0)


def row(image: np.ndarray, label: np.ndarray, mask: np.ndarray) -> np.ndarray:
    grey = (normalise(image[None])[0] * 255).astype(np.uint8)
    as_rgb = np.repeat(grey[..., None], 3, axis=-1)
    overlay = (as_rgb * 0.6).astype(np.uint8)
    overlay[mask & label] = TP
    overlay[mask & ~label] = FP
    overlay[~mask & label] = FN
    label_rgb = np.repeat((label * 255).astype(np.uint8)[..., None], 3, axis=-1)
    panels = [_fit(p) for p in (as_rgb, label_rgb, overlay)]
    spacer = np.full((PANEL, GAP, 3), 255, np.uint8)
    return np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1)


def _fit(panel: np.ndarray) -> np.ndarray:
    return (resize(panel, (PANEL, PANEL), order=0, preserve_range=True, anti_aliasing=False)).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", type=Path, help="IMAGE LABEL pairs")
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("docs/prediction.png"))
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give IMAGE LABEL pairs")
    model = load_model(registry.resolve(args.model))
    rows = []
    for image_path, label_path in zip(args.pairs[::2], args.pairs[1::2], strict=False):
        image, label = read_image(image_path), read_label(label_path)
        mask = binarise(segment(model, image, device="cpu").fine)
        print(f"{image_path}: Dice {binary_metrics(mask, label)['dice']:.4f}")
        rows.append(row(image, label, mask))
    spacer = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    figure = np.concatenate([part for r in rows for part in (r, spacer)][:-1], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    imsave(args.out, figure, check_contrast=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
