"""Inference speed and memory of OCTA-Net: milliseconds per image, parameters, peak memory.

    python benchmarks/bench_inference.py [--models lite paper default] [--sizes 304 400 840]
                                         [--devices cpu cuda] [--batches 1 16] [--repeats 5] [--threads N]

Each (model, size, device) is measured in a fresh subprocess, so that the peak resident memory
(CPU) or the peak allocated memory (CUDA) belongs to that measurement alone. Timing goes through
the public inference path (``segment``: scaling, padding to a multiple of 32, all three maps), one
batch of images at a time (one by default; ``--batches 1 16`` for throughput), after one warm-up
run; the median of the repeats is reported per image. Prints a Markdown table, and JSON with --json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(
    model: str, size: int, device: str, batch: int, repeats: int, threads: int | None
) -> dict[str, float | int | str]:
    """Runs inside the child process."""
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    from napari_octanet.core.checkpoint import load_model
    from napari_octanet.core.inference import segment
    from napari_octanet.core.network import OctaNet, count_parameters, get_config
    from napari_octanet.core.registry import registry

    # named configurations get random weights: only the speed is measured
    named = model in ("lite", "paper")
    network = OctaNet(get_config(model)) if named else load_model(registry.resolve(model)).network
    shape = (batch, size, size) if batch > 1 else (size, size)
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    segment(network, image, device=device, batch_size=batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segment(network, image, device=device, batch_size=batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start) / batch)
    peak_mib = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "model": model,
        "size": size,
        "device": device,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "ms_per_image": round(statistics.median(times), 1),
        "images_per_s": round(1000 / statistics.median(times), 1),
        "parameters": count_parameters(network),
        "peak_memory_mib": round(peak_mib, 1),
        "baseline_rss_mib": round(baseline_rss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lite", "paper"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[304, 840])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--batches", nargs="+", type=int, default=[1], help="images per call (throughput)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "SIZE", "DEVICE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, size, device, batch = args.child
        print(json.dumps(measure(model, int(size), device, int(batch), args.repeats, args.threads)))
        return 0
    devices = args.devices or ["cpu", *(["cuda"] if _has_cuda() else [])]
    rows = []
    for device in devices:
        for model in args.models:
            for size, batch in itertools.product(args.sizes, args.batches):
                command = [sys.executable, __file__, "--child", model, str(size), device, str(batch)]
                command += ["--repeats", str(args.repeats)]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(_row(rows[-1]) if not args.json else "", end="\n" if not args.json else "", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _row(r: dict[str, float | int | str]) -> str:
    return (
        f"| {r['model']} | {r['size']} | {r['device']} ({r['threads']} threads) | {r['batch']} "
        f"| {r['ms_per_image']} ms | {r['images_per_s']} "
        f"| {int(r['parameters']) / 1e6:.2f} M | {r['peak_memory_mib']} MiB |"
    )


if __name__ == "__main__":
    sys.exit(main())
