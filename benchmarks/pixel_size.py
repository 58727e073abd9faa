"""Does a scan's pixel size change the answer? Dice and measures of val scans resampled as other devices give them.

    python benchmarks/pixel_size.py DATA [--model NAME_OR_PATH ...] [--threads N] [--json OUT]

DATA holds octa-dev's layout (OCTA500_3M/val, OCTA500_6M/val, ROSSA/val). Each case of
``_resampled.CASES`` (3M x0.75, x1.5, x2; 6M x1.3; and native) is segmented by each model with
and without the pixel size given; Dice is the paper's (Otsu on the SRS map, no tolerance). The
measures (whole scan) of the resampled 3M scans, of the manual labels and of each model's masks
with the pixel size given, are reported as the mean ratio to the native scan's. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _resampled import CASES, Scan, val_scans  # noqa: E402

from napari_octanet.core.measure import VESSEL_COLUMNS  # noqa: E402

#: Whole-scan measures compared across pixel sizes (column names with a pixel size given).
MEASURES = (*VESSEL_COLUMNS, "faz_area_mm2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", action="append", help="model name or path (default: every bundled model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)

    import torch

    from napari_octanet.core.registry import bundled_checkpoints

    torch.set_num_threads(args.threads)
    names = args.model or [model.name for model, _ in bundled_checkpoints()]
    models = {name: _load(name) for name in names}
    figures = {"dice": {}, "measures": {}}
    for dataset, factor in CASES:
        scans = list(val_scans(args.data, dataset, factor))
        case = f"{dataset} x{factor:g}"
        for name, model in models.items():
            for given in (True, False):
                dices = [_dice(model, scan, scan.pixel_size_um if given else None) for scan in scans]
                figures["dice"][f"{case} | {name} | {'given' if given else 'unknown'}"] = float(np.nanmean(dices))
                print(
                    f"{case:18} {name:24} pixel size {'given  ' if given else 'unknown'} Dice {np.nanmean(dices):.4f}"
                )
                if factor == 1.0 and dataset != "OCTA500_3M":
                    break  # native scans of known size: 'given' changes nothing
        if dataset == "OCTA500_3M":
            figures["measures"][case] = _measures(scans, models)
    _print_tables(figures, list(models))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


def _load(name: str):
    from napari_octanet.core.checkpoint import load_model
    from napari_octanet.core.registry import registry

    return load_model(registry.resolve(name))


def _dice(model, scan: Scan, pixel_size_um: float | None) -> float:
    from napari_octanet.core.inference import segment
    from napari_octanet.core.metrics import evaluate_image

    maps = segment(model, scan.image, prescaled=True, pixel_size_um=pixel_size_um)
    return evaluate_image(maps.fine, scan.label)["dice"]


def _measures(scans: list[Scan], models: dict) -> dict[str, dict[str, float]]:
    """Whole-scan measures of the labels and of each model's masks (pixel size given), per source."""
    from napari_octanet.core.inference import segment
    from napari_octanet.core.thresholds import binarise

    rows: dict[str, dict[str, float]] = {"labels": _mean_row([(s.label, s) for s in scans])}
    for name, model in models.items():
        masks = [
            (binarise(segment(model, s.image, prescaled=True, pixel_size_um=s.pixel_size_um).fine, "otsu"), s)
            for s in scans
        ]
        rows[name] = _mean_row(masks)
    return rows


def _mean_row(masks: list[tuple[np.ndarray, Scan]]) -> dict[str, float]:
    from napari_octanet.core.measure import measure_scan

    values: dict[str, list[float]] = {key: [] for key in MEASURES}
    for mask, scan in masks:
        row = measure_scan(mask, scan=scan.image, pixel_size_um=scan.pixel_size_um, faz="find").rows()[0]
        for key in MEASURES:
            value = row.get(key)
            if isinstance(value, int | float) and value == value:
                values[key].append(float(value))
    return {key: float(np.mean(v)) if v else float("nan") for key, v in values.items()}


def _print_tables(figures: dict, models: list[str]) -> None:
    print("\n| case | " + " | ".join(f"{m} given | {m} unknown" for m in models) + " |")
    print("|---" * (1 + 2 * len(models)) + "|")
    cases = dict.fromkeys(key.split(" | ")[0] for key in figures["dice"])
    for case in cases:
        cells = [
            figures["dice"].get(f"{case} | {m} | {kind}", float("nan")) for m in models for kind in ("given", "unknown")
        ]
        print(f"| {case} | " + " | ".join("" if c != c else f"{c:.4f}" for c in cells) + " |")
    native = figures["measures"].get("OCTA500_3M x1")
    if not native:
        return
    sources = list(native)
    print("\nMeasures of OCTA500_3M val, resampled / native (pixel size given):\n")
    print("| case | source | " + " | ".join(MEASURES) + " |")
    print("|---" * (2 + len(MEASURES)) + "|")
    for case, rows in figures["measures"].items():
        if case == "OCTA500_3M x1":
            continue
        for source in sources:
            ratios = [rows[source][k] / native[source][k] if native[source][k] else float("nan") for k in MEASURES]
            print(f"| {case} | {source} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
