"""Peak memory and time of large scans, and how far tiling moves the result from one whole pass.

    python benchmarks/large_scans.py [--model default] [--sizes 1024 2048 4096] [--threads 2]

Each size runs in a fresh process (peak RSS is per process): a synthetic scan of that size is
segmented through the public ``segment()``, which runs slices larger than the pass budget as
overlapping tiles. ``--compare`` also runs the same scan in one whole pass (the pass budget
lifted) in the same process and prints the largest difference of the fine map and the share
of mask pixels that differ; the whole pass needs far more memory, so its RSS is not reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(size: int, model_name: str, threads: int, compare: bool) -> dict[str, float]:
    import numpy as np
    import torch

    from napari_octanet.core import inference
    from napari_octanet.core.checkpoint import load_model
    from napari_octanet.core.registry import registry
    from napari_octanet.core.synthetic import synthetic_octa
    from napari_octanet.core.thresholds import binarise

    torch.set_num_threads(threads)
    model = load_model(registry.resolve(model_name))
    scan, _ = synthetic_octa(size, seed=0)
    started = time.perf_counter()
    tiled = inference.segment(model, scan, device="cpu").fine
    row = {"size": size, "seconds": time.perf_counter() - started}
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if compare:
        inference.MAX_PIXELS_PER_PASS = 10**12
        whole = inference.segment(model, scan, device="cpu").fine
        row["max_abs_difference"] = float(np.abs(tiled - whole).max())
        row["mask_pixels_differing"] = float((binarise(tiled) != binarise(whole)).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="also run one whole pass and compare")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.model, args.threads, args.compare)))
        return
    print("| size | seconds | peak RSS (MiB) | max abs difference to one pass | mask pixels differing |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", str(size), "--model", args.model, "--threads", str(args.threads)]
        output = subprocess.run(command + ["--compare"] * args.compare, capture_output=True, text=True, check=True)
        row = json.loads(output.stdout.strip().splitlines()[-1])
        difference = f"{row['max_abs_difference']:.2e}" if "max_abs_difference" in row else "-"
        differing = f"{100 * row['mask_pixels_differing']:.3f} %" if "mask_pixels_differing" in row else "-"
        print(f"| {size} | {row['seconds']:.1f} | {row['peak_rss_mib']:.0f} | {difference} | {differing} |", flush=True)


if __name__ == "__main__":
    main()
