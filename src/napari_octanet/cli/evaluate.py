"""``octanet evaluate``: the paper's metrics on a labelled dataset split."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..core.evaluation import DEFAULT_SPLIT
from ..core.inference import MAP_CHOICES
from ..core.layouts import LAYOUTS
from ._common import (
    add_mask_options,
    add_model_options,
    add_pixel_size_options,
    follow_with_bar,
    load_model_for,
    mixed_precision_of,
    pixel_size_rule,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="score a model on a labelled dataset (paper protocol)")
    parser.add_argument("data", metavar="DATA", help="dataset folder (ROSE-1, ROSE-2 or image/label pairs)")
    parser.add_argument(
        "--split",
        default=None,
        help=f"split: the split folders named this or starting with it and '_' (train also takes train_manual and "
        f"train_sam; default: {DEFAULT_SPLIT}, or the split folder DATA is, when it is one)",
    )
    parser.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    add_model_options(parser)
    add_mask_options(parser, speck_size=0)  # the paper's protocol keeps every piece
    add_pixel_size_options(parser, "for segmenting each image at the model's working size")
    parser.add_argument("--tolerance", action="store_true", help="3x3 tolerance for centerline-level labels")
    parser.add_argument(
        "--map",
        default="fine",
        choices=MAP_CHOICES,
        help="which output to score (default: fine, the SRS output)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--per-image", action="store_true", help="also list every image's scores")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..core.evaluation import iter_evaluate, split_to_score
    from ..core.layouts import index_dataset
    from ..core.metrics import METRIC_KEYS
    from ..core.thresholds import parse_threshold

    threshold = parse_threshold(args.threshold)
    pixel_sizes = pixel_size_rule(args)
    split = split_to_score(args.data, args.split)
    index = index_dataset(args.data, args.layout, split)
    if index.unpaired or index.unreadable:
        print(index.report(), file=sys.stderr)
    model, choice = load_model_for(args)
    result = follow_with_bar(
        iter_evaluate(
            model,
            index,
            threshold=threshold,
            speck_size=args.speck_size,
            tolerance=args.tolerance,
            device=str(choice.device),
            which=args.map,
            tta=args.tta,
            mixed_precision=mixed_precision_of(args),
            pixel_sizes=pixel_sizes,
        ),
        unit="image",
    )
    if result.skipped:
        print(f"{len(result.skipped)} image(s) skipped, the others scored:", file=sys.stderr)
        for reason in result.skipped:
            print(f"  {reason}", file=sys.stderr)
    if args.json:
        payload = {
            **result.summary,
            "model": model.source,
            "data": str(args.data),
            "split": split,
            "threshold": threshold,
            "speck_size": args.speck_size,
            "tolerance": args.tolerance,
            "map": args.map,
            "tta": args.tta,
            "pixel_size_um": args.pixel_size_um,
            "fov_mm": args.fov_mm,
        }
        payload["skipped"] = result.skipped
        if args.per_image:
            payload["per_image"] = result.per_image
        print(json.dumps(_json_safe(payload), indent=2, allow_nan=False))
        return 0
    if args.per_image:
        for row in result.per_image:
            print(f"{row['image']}: " + ", ".join(f"{k} {row[k]:.4f}" for k in METRIC_KEYS))
    n_images = result.summary["n_images"]
    print(f"{n_images} images from {args.data} ({index.layout}, split {split}):")
    for key in METRIC_KEYS:
        print(f"  {key:6s} {_mean_line(result.summary, key, n_images)}")
    return 0


def _mean_line(summary: dict[str, Any], key: str, n_images: int) -> str:
    """'mean ± std', saying over how many images when the metric is undefined on some (see core.metrics)."""
    defined = summary[f"{key}_n"]
    if defined == 0:
        return "undefined on every image"
    line = f"{summary[key]:.4f} ± {summary[key + '_std']:.4f}"
    return line if defined == n_images else f"{line} (over {defined} of {n_images} images; undefined on the others)"


def _json_safe(value: Any) -> Any:
    """Undefined metrics (NaN, e.g. AUC of a label without vessels) become JSON null, not bare NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
