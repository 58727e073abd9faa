"""How well the per-scan confidence ranks scans, and how often the artefact flags catch what they should.

    OMP_NUM_THREADS=1 python benchmarks/confidence.py DATA [--model default] [--cache DIR] [--plot PNG]

DATA holds OCTA500_3M, OCTA500_6M and ROSSA with val splits (10, 20 and 100 scans). Each val scan
is segmented (maps cached as npz under --cache, keyed by the checkpoint, so reruns are cheap) and
scored against its label (Otsu on the SRS map, every piece kept: ``octanet evaluate``'s protocol).

Confidence: each split is cut in two halves (even and odd scans, in file order); each half is
predicted by a calibration fitted on the other two splits and the other half of its own split,
every split weighing alike. Prints Spearman and mean absolute error of predicted against true
Dice per split (and leave-one-split-out figures, a harsher check), the calibration fitted on all
scans (the ``DEFAULT_CALIBRATION`` literal), its confidence on scans damaged at moderate strength,
and the cost of the checks against inference. Writes the scatter plot to --plot.

Flags: every recipe of ``quality.simulate`` at every strength on every val scan (seeded by its
index), and the clean scans: hit rate per kind and strength, false-flag rate per split.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from napari_octanet.core.checkpoint import LoadedModel, load_model
from napari_octanet.core.inference import Segmentation, segment
from napari_octanet.core.layouts import index_dataset, load_sample
from napari_octanet.core.metrics import binary_metrics
from napari_octanet.core.quality import (
    DEFAULT_CALIBRATION,
    Calibration,
    artefacts,
    assess_scan,
    fit_calibration,
    predict_confidence,
    scan_features,
)
from napari_octanet.core.quality.simulate import EXCLUDED_STRENGTHS, RECIPES, STRENGTHS, simulate
from napari_octanet.core.registry import registry
from napari_octanet.core.thresholds import binarise

SPLITS = ("OCTA500_3M", "OCTA500_6M", "ROSSA")
#: The features of the calibration (docs/confidence.md says why these four).
CALIBRATED = ("map_agreement", "vessel_contrast", "line_roughness", "fine_detail_correlation")
#: Every this-many-th scan is also segmented damaged (one recipe at a time, moderate strength).
DAMAGED_EVERY = 4


@dataclass
class Scan:
    split: str
    stem: str
    image: np.ndarray
    label: np.ndarray
    maps: Segmentation
    dice: float
    features: dict[str, float]


class MapCache:
    """Segmentations stored as npz under a folder named for the checkpoint, so a rerun skips inference."""

    def __init__(self, model: LoadedModel, checkpoint: Path, root: Path) -> None:
        stat = checkpoint.stat()
        key = hashlib.sha1(f"{checkpoint.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        self.folder = root / f"{checkpoint.stem}-{key}"
        self.model = model
        self.inference_seconds: list[float] = []

    def maps(self, name: str, image: np.ndarray) -> Segmentation:
        path = self.folder / f"{name}.npz"
        if path.exists():
            with np.load(path) as stored:
                return Segmentation(stored["pixel"], stored["centerline"], stored["fine"], "cpu")
        start = time.perf_counter()
        maps = segment(self.model, image, device="cpu")
        self.inference_seconds.append(time.perf_counter() - start)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, pixel=maps.pixel, centerline=maps.centerline, fine=maps.fine)
        return maps


def dice_of(maps: Segmentation, label: np.ndarray) -> float:
    return binary_metrics(binarise(maps.fine), label)["dice"]


def load_scans(data: Path, cache: MapCache) -> list[Scan]:
    scans = []
    for split in SPLITS:
        for sample in index_dataset(data / split, "pairs", "val").samples:
            loaded = load_sample(sample)
            image, label = np.asarray(loaded.image), np.asarray(loaded.label) > 0
            maps = cache.maps(f"{split}/{sample.stem}", image)
            scans.append(Scan(split, sample.stem, image, label, maps, dice_of(maps, label), scan_features(maps, image)))
    return scans


def fit(groups: list[list[Scan]], note: str = "") -> Calibration:
    """A calibration fitted on the groups' scans, each group weighing alike."""
    scans = [scan for group in groups for scan in group]
    weights = [1.0 / len(group) for group in groups for _ in group]
    return fit_calibration(
        [s.features for s in scans], [s.dice for s in scans], CALIBRATED, weights=weights, fitted_on=note
    )


def cross_validated(scans: list[Scan], keep_half: bool) -> dict[str, np.ndarray]:
    """Each split's out-of-fold predictions: halves (``keep_half``) or the whole split left out."""
    predictions = {}
    for split in SPLITS:
        own = [s for s in scans if s.split == split]
        others = [[s for s in scans if s.split == other] for other in SPLITS if other != split]
        predicted = np.empty(len(own))
        for half in (0, 1) if keep_half else (None,):
            left_out = [i for i in range(len(own)) if half is None or i % 2 == half]
            kept = [[own[i] for i in range(len(own)) if i not in left_out]] if keep_half else []
            calibration = fit(others + kept)
            for i in left_out:
                predicted[i] = predict_confidence(own[i].features, calibration)
        predictions[split] = predicted
    return predictions


def confidence_table(scans: list[Scan], predictions: dict[str, np.ndarray], title: str) -> None:
    print(f"\n### Confidence, {title}\n")
    print("| split | scans | true Dice mean (min-max) | Spearman | MAE | MAE of a constant |")
    print("|---|---|---|---|---|---|")
    for split in SPLITS:
        true = np.array([s.dice for s in scans if s.split == split])
        rho = spearmanr(predictions[split], true)[0]
        constant = np.mean([s.dice for s in scans if s.split != split])  # the best guess without features
        print(
            f"| {split} | {len(true)} | {true.mean():.3f} ({true.min():.3f}-{true.max():.3f}) | {rho:.2f} | "
            f"{np.abs(predictions[split] - true).mean():.4f} | {np.abs(constant - true).mean():.4f} |"
        )


def calibration_literal(calibration: Calibration) -> str:
    numbers = ", ".join(f"{c:.6g}" for c in calibration.coefficients)
    ranges = ", ".join(f"({low:.6g}, {high:.6g})" for low, high in calibration.ranges)
    return (
        "DEFAULT_CALIBRATION = Calibration(\n"
        f"    features={calibration.features!r},\n"
        f"    coefficients=({numbers}),\n"
        f"    intercept={calibration.intercept:.6g},\n"
        f"    fitted_on={calibration.fitted_on!r},\n"
        f"    ranges=({ranges}),\n)"
    )


def damaged_confidence(scans: list[Scan], cache: MapCache, calibration: Calibration) -> None:
    """Mean confidence and true Dice of every DAMAGED_EVERY-th scan with each artefact at moderate strength."""
    chosen = scans[::DAMAGED_EVERY]
    print(f"\n### Confidence of damaged scans ({len(chosen)} val scans, moderate strength, full calibration)\n")
    print("| scans | mean confidence | mean true Dice | Spearman within the rows' pool |")
    print("|---|---|---|---|")
    pooled: list[tuple[float, float]] = []
    clean = [(predict_confidence(s.features, calibration), s.dice) for s in chosen]
    print(f"| clean | {np.mean([c for c, _ in clean]):.3f} | {np.mean([d for _, d in clean]):.3f} | |")
    pooled += clean
    for recipe in RECIPES:
        rows = []
        for index, scan in enumerate(chosen):
            image = simulate(scan.image, recipe.name, "moderate", seed=index)
            maps = cache.maps(f"damaged/{recipe.name.replace(' ', '-')}/{scan.split}-{scan.stem}", image)
            rows.append((assess_scan(maps, image, calibration).confidence, dice_of(maps, scan.label)))
        pooled += rows
        confidence, true = np.mean(rows, axis=0)
        print(f"| {recipe.kind}: {recipe.name} | {confidence:.3f} | {true:.3f} | |")
    confidence, true = np.array(pooled).T
    print(f"| all of the above | | | {spearmanr(confidence, true)[0]:.2f} |")


def check_cost(scans: list[Scan], model: LoadedModel) -> None:
    """Seconds of assess_scan against seconds of inference, on the same scans and thread."""
    chosen = [next(s for s in scans if s.split == split) for split in SPLITS]
    print("\n### Cost of the checks (one CPU thread)\n")
    print("| scan | inference ms | confidence and flags ms | share |")
    print("|---|---|---|---|")
    for scan in chosen:
        inference = _best_of(lambda s=scan: segment(model, s.image, device="cpu"))
        checks = _best_of(lambda s=scan: assess_scan(s.maps, s.image))
        size = f"{scan.split} ({scan.image.shape[0]} px)"
        print(f"| {size} | {1000 * inference:.0f} | {1000 * checks:.0f} | {100 * checks / inference:.1f} % |")


def _best_of(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _of_kind(kind: str) -> tuple[str, ...]:
    return tuple(recipe.name for recipe in RECIPES if recipe.kind == kind)


#: The measure behind each check, the recipes it is meant for, its threshold and whether it flags below it.
CHECKS = (
    ("blink_share", _of_kind("blink"), artefacts.BLINK_MIN_SHARE, False),
    ("shift_gain", ("shifted rows", "shifted columns"), artefacts.SHIFT_GAIN, False),
    ("repeated", ("duplicated strip",), artefacts.REPEAT_MIN_LINES, False),
    ("stripe_offset", ("bright lines",), artefacts.STRIPE_OFFSET, False),
    ("fine_detail_correlation", _of_kind("low_signal"), artefacts.FINE_DETAIL_CORRELATION, True),
)


def worst_axis(measures: dict[str, float], name: str) -> float:
    """A measure of rows and columns taken at the axis nearer to a flag (the scan-wide ones as they are)."""
    return measures[name] if name in measures else max(measures[f"{name}_rows"], measures[f"{name}_columns"])


def flag_rates(scans: list[Scan]) -> None:
    print("\n### Flags on clean val scans\n")
    print("| split | scans | flagged | which (flag: reason) |")
    print("|---|---|---|---|")
    clean = [artefacts.inspect_scan(s.image) for s in scans]
    for split in SPLITS:
        flagged = [(s.stem, c.flags) for s, c in zip(scans, clean, strict=True) if s.split == split and c.flags]
        count = sum(s.split == split for s in scans)
        which = "; ".join(f"{stem} ({', '.join(f'{f.name}: {f.reason}' for f in flags)})" for stem, flags in flagged)
        print(f"| {split} | {count} | {len(flagged)} ({100 * len(flagged) / count:.0f} %) | {which} |")
    hits: dict[tuple[str, str], list[bool]] = {}
    measured: dict[tuple[str, str], list[dict[str, float]]] = {}
    others: dict[str, int] = {}
    for index, (scan, inspection) in enumerate(zip(scans, clean, strict=True)):
        before = {f.name for f in inspection.flags}
        for recipe in RECIPES:
            for strength in STRENGTHS:
                damaged = artefacts.inspect_scan(simulate(scan.image, recipe.name, strength, index))
                names = {f.name for f in damaged.flags}
                hits.setdefault((recipe.name, strength), []).append(recipe.kind in names)
                measured.setdefault((recipe.name, strength), []).append(damaged.measures)
                others[recipe.name] = others.get(recipe.name, 0) + len(names - before - {recipe.kind})
    excluded = ", ".join(EXCLUDED_STRENGTHS)
    print(f"\n### Flags on damaged val scans ({len(scans)} scans per cell; reviewers exclude: {excluded})\n")
    print("| kind | recipe | " + " | ".join(STRENGTHS) + " | flags of another kind (all strengths) |")
    print("|---|---|" + "---|" * len(STRENGTHS) + "---|")
    for recipe in RECIPES:
        rates = " | ".join(f"{np.mean(hits[(recipe.name, s)]):.2f}" for s in STRENGTHS)
        print(f"| {recipe.kind} | {recipe.name} | {rates} | {others[recipe.name]} |")
    for kind in dict.fromkeys(r.kind for r in RECIPES):
        pooled = [np.mean([h for r in RECIPES if r.kind == kind for h in hits[(r.name, s)]]) for s in STRENGTHS]
        print(f"| **{kind}** | all recipes | " + " | ".join(f"**{p:.2f}**" for p in pooled) + " | |")
    threshold_table(scans, clean, measured)


def threshold_table(scans: list[Scan], clean: list[artefacts.Inspection], measured: dict) -> None:
    """Each check's measure on the clean scans (the end nearest its threshold, per split) and on its damaged ones."""
    print("\n### The measures behind the thresholds\n")
    print("Clean: the value nearest a flag per split. Damaged: the 10th percentile from the flag's side.\n")
    print("| measure | flags when | " + " | ".join(f"clean {s}" for s in SPLITS) + " | " + " | ".join(STRENGTHS) + " |")
    print("|---|---|" + "---|" * (len(SPLITS) + len(STRENGTHS)))
    for name, recipes, threshold, below in CHECKS:
        nearest = min if below else max
        per_split = [
            nearest(worst_axis(c.measures, name) for s, c in zip(scans, clean, strict=True) if s.split == split)
            for split in SPLITS
        ]
        damaged = [
            np.percentile([worst_axis(m, name) for r in recipes for m in measured[(r, strength)]], 90 if below else 10)
            for strength in STRENGTHS
        ]
        cells = " | ".join(f"{v:.3g}" for v in [*per_split, *damaged])
        print(f"| {name} | {'<' if below else '>='} {threshold} | {cells} |")


def plot(scans: list[Scan], predictions: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5), dpi=120)
    for split, marker in zip(SPLITS, "osD", strict=True):
        true = [s.dice for s in scans if s.split == split]
        rho = spearmanr(predictions[split], true)[0]
        axes.scatter(true, predictions[split], s=18, marker=marker, alpha=0.75, label=f"{split} (Spearman {rho:.2f})")
    low = min(min(s.dice for s in scans), min(p.min() for p in predictions.values())) - 0.01
    axes.plot([low, 1], [low, 1], color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel("true Dice (Otsu, SRS map)")
    axes.set_ylabel("confidence (predicted Dice, cross-validated)")
    axes.set_title("Confidence of the bundled model on the val scans")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="default", help="a registered name or a checkpoint file")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/octanet-confidence-cache"))
    parser.add_argument("--plot", type=Path, default=Path("docs/confidence-scatter.png"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = registry.resolve(args.model)
    model = load_model(checkpoint)
    cache = MapCache(model, checkpoint, args.cache)
    start = time.perf_counter()
    scans = load_scans(args.data, cache)
    halves = cross_validated(scans, keep_half=True)
    confidence_table(scans, halves, "halves (other two splits + other half of its own)")
    confidence_table(scans, cross_validated(scans, keep_half=False), "leave one split out")
    splits = [[s for s in scans if s.split == split] for split in SPLITS]
    note = f"{checkpoint.stem}: {len(scans)} val scans of {', '.join(SPLITS)}, splits weighing alike"
    calibration = fit(splits, note)
    print("\n### Calibration fitted on all val scans\n\n```python\n" + calibration_literal(calibration) + "\n```")
    if calibration_literal(calibration) != calibration_literal(DEFAULT_CALIBRATION):
        print("(differs from quality.DEFAULT_CALIBRATION: paste the literal above into quality/calibration.py)")
    damaged_confidence(scans, cache, calibration)
    check_cost(scans, model)
    flag_rates(scans)
    if args.plot:
        plot(scans, halves, args.plot)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
