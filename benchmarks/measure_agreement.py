"""Do vessel measures from the bundled model's masks agree with those from the manual labels?

    python benchmarks/measure_agreement.py DATA_ROOT [--model default] [--figure docs/measure-agreement.png]

For every val split of DATA_ROOT (OCTA500_3M: 3 mm, OCTA500_6M: 6 mm, ROSSA: 3 mm fields of view),
each scan is segmented (Otsu threshold, specks dropped, as ``octanet segment``) and VAD, VLD and VDI are measured
on the whole scan from the predicted mask and from the manual label. Prints, per data set and
measure, Pearson's r and the mean relative difference (prediction - label) / label as a Markdown
table, and draws a Bland-Altman figure (difference against mean; bias and 95 % limits).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.inference import segment
from napari_octanet.core.layouts import index_dataset, load_sample
from napari_octanet.core.measure import measure_scan, pixel_size_from_fov
from napari_octanet.core.registry import registry
from napari_octanet.core.thresholds import DEFAULT_SPECK_SIZE, binarise

FIELDS_OF_VIEW_MM = {"OCTA500_3M": 3.0, "OCTA500_6M": 6.0, "ROSSA": 3.0}
MEASURES = {"vad": "VAD (%)", "vld": "VLD (mm⁻¹)", "vdi": "VDI (µm)"}


def whole_scan_measures(mask: np.ndarray, fov_mm: float) -> dict[str, float]:
    record = measure_scan(mask, pixel_size_um=pixel_size_from_fov(fov_mm, mask.shape[1])).records[0]
    return {name: float(getattr(record.vessels, name)) for name in MEASURES}


def pairs_of(data: Path, split: str, model) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, labelled) measures, each (images, measures), for one data set's val split."""
    predicted, labelled = [], []
    for sample in index_dataset(data / split, "pairs", "val").samples:
        loaded = load_sample(sample)
        mask = binarise(segment(model, np.asarray(loaded.image), device="cpu").fine, "otsu", DEFAULT_SPECK_SIZE)
        fov = FIELDS_OF_VIEW_MM[split]
        predicted.append(list(whole_scan_measures(mask, fov).values()))
        labelled.append(list(whole_scan_measures(loaded.label > 0, fov).values()))
    return np.array(predicted), np.array(labelled)


def agreement_row(split: str, count: int, predicted: np.ndarray, labelled: np.ndarray) -> str:
    cells = []
    for column in range(len(MEASURES)):
        r = np.corrcoef(predicted[:, column], labelled[:, column])[0, 1]
        relative = np.mean((predicted[:, column] - labelled[:, column]) / labelled[:, column])
        cells.append(f"{r:.2f} | {100 * relative:+.1f} %")
    return f"| {split} | {count} | " + " | ".join(cells) + " |"


def bland_altman(results: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(MEASURES), len(results), figsize=(4 * len(results), 3.2 * len(MEASURES)))
    for col, (split, (predicted, labelled)) in enumerate(results.items()):
        for row, title in enumerate(MEASURES.values()):
            mean = (predicted[:, row] + labelled[:, row]) / 2
            difference = predicted[:, row] - labelled[:, row]
            bias, spread = difference.mean(), 1.96 * difference.std(ddof=1)
            axis = axes[row, col]
            axis.scatter(mean, difference, s=10, alpha=0.7)
            axis.axhline(bias, color="k")
            for limit in (bias - spread, bias + spread):
                axis.axhline(limit, color="k", linestyle="--", linewidth=0.8)
            axis.axhline(0, color="grey", linewidth=0.5)
            axis.set_title(f"{split}: {title}", fontsize=9)
            axis.set_xlabel("mean of model and label", fontsize=8)
            axis.set_ylabel("model - label", fontsize=8)
            axis.tick_params(labelsize=7)
    figure.suptitle("Bland-Altman: whole-scan measures from the bundled model's masks vs manual labels (val)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="default", help="a registered name or a checkpoint file")
    parser.add_argument("--figure", type=Path, default=Path("docs/measure-agreement.png"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(registry.resolve(args.model))
    print("| val split | images | " + " | ".join(f"{n} r | {n} mean rel. diff." for n in MEASURES) + " |")
    print("|---" * (2 + 2 * len(MEASURES)) + "|")
    results = {}
    for split in FIELDS_OF_VIEW_MM:
        predicted, labelled = pairs_of(args.data, split, model)
        results[split] = (predicted, labelled)
        print(agreement_row(split, len(predicted), predicted, labelled), flush=True)
    bland_altman(results, args.figure)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
