"""Where a model's remaining errors lie: at vessel edges or in whole pieces.

    python benchmarks/error_anatomy.py DATA_ROOT [--model default] [--split val] [--threads 2]

For every split of DATA_ROOT's OCTA500_3M, OCTA500_6M and ROSSA (``--split train`` reads ROSSA's
train_manual), each scan is segmented and thresholded as the paper's protocol does (Otsu, every
piece kept). Error pixels are pooled over the split and sorted into edge errors (a false positive
that touches the label, 8-connected, or a false negative that touches the mask) and far errors
(whole missed or extra pieces). Prints, as a Markdown table: mean Dice per scan, pooled Dice, the
share of errors at an edge, and the pooled Dice that getting every far error right, or every edge
error right, would give. Scoring a train split says how closely the model fits the scans it
learned from.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.inference import segment
from napari_octanet.core.layouts import index_dataset, load_sample
from napari_octanet.core.registry import registry
from napari_octanet.core.thresholds import binarise

SPLITS = ("OCTA500_3M", "OCTA500_6M", "ROSSA")
#: ROSSA names its manually labelled train split apart from the SAM-labelled one.
TRAIN_SPLIT_OF = {"ROSSA": "train_manual"}
NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass
class ErrorCounts:
    """Pixel counts pooled over scans."""

    true_positive: int = 0
    false_positive_at_edge: int = 0
    false_positive_far: int = 0
    false_negative_at_edge: int = 0
    false_negative_far: int = 0

    def add(self, mask: np.ndarray, label: np.ndarray) -> None:
        near_label = ndimage.binary_dilation(label, NEIGHBOURS)
        near_mask = ndimage.binary_dilation(mask, NEIGHBOURS)
        false_positive, false_negative = mask & ~label, label & ~mask
        self.true_positive += int((mask & label).sum())
        self.false_positive_at_edge += int((false_positive & near_label).sum())
        self.false_positive_far += int((false_positive & ~near_label).sum())
        self.false_negative_at_edge += int((false_negative & near_mask).sum())
        self.false_negative_far += int((false_negative & ~near_mask).sum())

    def dice(self, *, edge: bool = True, far: bool = True) -> float:
        """Pooled Dice, counting edge errors and far errors only where asked."""
        errors = 0
        if edge:
            errors += self.false_positive_at_edge + self.false_negative_at_edge
        if far:
            errors += self.false_positive_far + self.false_negative_far
        return 2 * self.true_positive / (2 * self.true_positive + errors)

    def edge_share(self) -> float:
        edge = self.false_positive_at_edge + self.false_negative_at_edge
        return edge / (edge + self.false_positive_far + self.false_negative_far)


def dice(mask: np.ndarray, label: np.ndarray) -> float:
    return 2 * float((mask & label).sum()) / max(int(mask.sum() + label.sum()), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="default", help="a registered name or a checkpoint file")
    parser.add_argument("--split", default="val", choices=("val", "train"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(registry.resolve(args.model))
    print(f"{args.model}, {args.split} splits, Otsu, every piece kept\n")
    print("| split | scans | mean Dice | pooled Dice | errors at an edge | far errors right | edge errors right |")
    print("|---|---|---|---|---|---|---|")
    for name in SPLITS:
        split = TRAIN_SPLIT_OF.get(name, "train") if args.split == "train" else args.split
        counts, per_scan = ErrorCounts(), []
        for sample in index_dataset(args.data / name, "pairs", split).samples:
            loaded = load_sample(sample)
            label = loaded.label > 0
            mask = binarise(segment(model, loaded.image, device="cpu").fine)
            counts.add(mask, label)
            per_scan.append(dice(mask, label))
        print(
            f"| {name}/{split} | {len(per_scan)} | {np.mean(per_scan):.4f} | {counts.dice():.4f} | "
            f"{counts.edge_share():.0%} | {counts.dice(far=False):.4f} | {counts.dice(edge=False):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
