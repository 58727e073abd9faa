"""Our OCTA-Net against the official code, each in fresh processes, as a user meets them.

    python benchmarks/bench_vs_official.py [--official PATH] [--sizes 304 400 832]
                                           [--rounds 5] [--repeats 5] [--threads 2] [--json]

Kinds measured (each run is a new Python process, so import, allocator and first-pass costs are
those a user pays):

- ``bundled``: the bundled model through the public ``segment()`` (scaling, padding, three maps),
  in the CPU's fast precision where it has one (bfloat16 with AMX: ``devices.fast_precision``);
- ``bundled-float32``: the same with ``mixed_precision=False``;
- ``paper``: the ``paper`` configuration with random weights, through ``segment()``;
- ``official``: the official SCS (``SRF_UNet``) then SRS (``fusion``) forward with random weights,
  when ``--official`` names the folder holding its ``first_stage.py`` (iMED-Lab's
  OCTA-Net-OCTA-Vessel-Segmentation-Network, ``code/OCTA-Net``). It needs two edits to build
  without downloads: drop the unused ``from torchvision import models`` in ``first_stage.py`` and
  build ``resnest50(pretrained=False)``. Keep that copy outside this repository.

Kinds alternate within each round (bundled, paper, official, bundled, ...) so that a busy machine
slows them alike. Each process runs one warm-up pass and reports the median of ``--repeats``
passes and its peak RSS; the table gives the median over rounds and the ratio to the official
forward of the same size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

KINDS = ("bundled", "bundled-float32", "paper", "official")


def _ours(kind: str, size: int) -> Callable[[], object]:
    from napari_octanet.core.checkpoint import load_model
    from napari_octanet.core.inference import segment
    from napari_octanet.core.network import PAPER, OctaNet
    from napari_octanet.core.registry import bundled_checkpoint
    from napari_octanet.core.synthetic import synthetic_octa

    network = OctaNet(PAPER) if kind == "paper" else load_model(bundled_checkpoint()).network
    image, _ = synthetic_octa(size, seed=0)
    return lambda: segment(network, image, device="cpu", mixed_precision=kind != "bundled-float32")


def _official(path: str, size: int) -> Callable[[], object]:
    import torch

    sys.path.insert(0, path)
    from first_stage import SRF_UNet  # type: ignore[import-not-found]
    from second_stage import fusion  # type: ignore[import-not-found]

    coarse = SRF_UNet(img_ch=3, output_ch=1).eval()
    fine = fusion(channels=64, pn_size=3, kernel_size=3, avg=0.0, std=0.1).eval()
    image = torch.rand(1, 1, size, size)

    def forward() -> object:
        with torch.no_grad():
            thick, thin, _ = coarse(image.expand(-1, 3, -1, -1))
            return fine(image, thick, thin)

    return forward


def measure(kind: str, size: int, repeats: int, threads: int, official: str | None) -> dict[str, object]:
    """Runs inside the child process."""
    import torch

    torch.set_num_threads(threads)
    run = _official(official, size) if kind == "official" and official else _ours(kind, size)
    start = time.perf_counter()
    run()
    first_ms = 1000 * (time.perf_counter() - start)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return {
        "kind": kind,
        "size": size,
        "first_ms": round(first_ms, 1),
        "ms": round(statistics.median(times), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(kind: str, size: int, args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", kind, str(size), "--repeats", str(args.repeats)]
    command += ["--threads", str(args.threads)] + (["--official", args.official] if args.official else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict[str, object]], kinds: tuple[str, ...], sizes: list[int]) -> str:
    lines = [
        "| size | kind | ms (median of rounds) | first pass ms | x official | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        medians = {
            kind: {
                key: statistics.median(float(r[key]) for r in rows if r["kind"] == kind and r["size"] == size)
                for key in ("ms", "first_ms", "peak_rss_mib")
            }
            for kind in kinds
        }
        for kind in kinds:
            figures = medians[kind]
            ratio = f"{figures['ms'] / medians['official']['ms']:.2f}" if "official" in medians else "-"
            lines.append(
                f"| {size} | {kind} | {figures['ms']:.0f} | {figures['first_ms']:.0f} | {ratio} | "
                f"{figures['peak_rss_mib']:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default=None, help="folder with the official first_stage.py (edited, see above)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[304, 400, 832])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size = args.child
        print(json.dumps(measure(kind, int(size), args.repeats, args.threads, args.official)))
        return 0
    if args.official and not (Path(args.official) / "first_stage.py").is_file():
        parser.error(f"{args.official} holds no first_stage.py")
    kinds = tuple(k for k in args.kinds if k != "official" or args.official)
    rows = []
    for round_index in range(args.rounds):
        for size in args.sizes:
            for kind in kinds:
                rows.append(_child(kind, size, args))
                print(f"round {round_index + 1}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1) if args.json else _table(rows, kinds, args.sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
