"""Carry train and val splits to a lent GPU machine within its 64 MiB limit, losslessly.

The device tool sends the working tree and the paths named in ``carry``, 64 MiB in all, and the
data beside the checkout does not travel. The checkout takes 16.5 MiB (the two bundled models
14 MiB), and the three sets' train and val splits without ROSSA's SAM labels 57 MiB as PNG files.
Stored as lossless WebP (8-bit grey images) and 1-bit PNG (0/255 labels) they take 50 MiB, and
44 MiB with ROSSA's val split cut to its first 30 scans (``--max-val 30``): what fits. Every file
is checked to decode to the same pixels before it is packed; ``unpack`` writes the usual 8-bit
PNG files back.

    python benchmarks/gpu_data.py pack DATA_ROOT .gpu-data/data.tar --max-val 30
    python3 benchmarks/gpu_data.py unpack .gpu-data/data.tar DEST     (on the lent machine)

DATA_ROOT is laid out like octa-dev (<set>/<split>/{image,label}/). Only splits named train* or
val are packed, never one named in --exclude (default: train_sam). The archive is for the lent
machine alone: the data's terms keep it out of the project (``.gpu-data/`` is ignored by git).
"""

from __future__ import annotations

import argparse
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image


def packed_splits(root: Path, exclude: set[str]) -> Iterator[Path]:
    """Every <set>/<split> folder under root that the GPU runs read: train* and val, less exclude."""
    for split in sorted(root.glob("*/*/")):
        name = split.name
        if (name.startswith("train") or name == "val") and name not in exclude:
            yield split


def compact(pixels: np.ndarray) -> tuple[bytes, str]:
    """The smallest lossless encoding this script knows for the pixels, and its file suffix."""
    buffer = io.BytesIO()
    if pixels.dtype == np.uint8 and pixels.ndim == 2 and set(np.unique(pixels)) <= {0, 255}:
        Image.fromarray(pixels > 0).save(buffer, format="PNG", optimize=True)
        suffix = ".png"
    elif pixels.dtype == np.uint8 and pixels.ndim == 2:
        # quality is lossless WebP's effort: 100 saves another 6 % but takes 100 times as long
        Image.fromarray(pixels).save(buffer, format="WEBP", lossless=True, quality=50, method=6)
        suffix = ".webp"
    else:
        Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
        suffix = ".png"
    buffer.seek(0)
    if not np.array_equal(_decoded(Image.open(buffer)), pixels):
        raise ValueError("lossless encoding changed the pixels")
    return buffer.getvalue(), suffix


def _decoded(image: Image.Image) -> np.ndarray:
    """Pixels as they were packed: 1-bit as 0/255 and WebP's RGB back to one grey channel."""
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * 255
    if image.format == "WEBP":
        return np.asarray(image.convert("L"))
    return np.asarray(image)


def packed_files(split: Path, max_val: int | None) -> list[Path]:
    """The split's image and label files; of a val split at most max_val pairs (the first by name)."""
    stems = sorted({path.stem for path in split.glob("*/*")})
    if split.name == "val" and max_val is not None:
        stems = stems[:max_val]
    kept = set(stems)
    return [path for path in sorted(split.glob("*/*")) if path.stem in kept]


def pack(root: Path, archive: Path, exclude: set[str], max_val: int | None = None) -> int:
    """Write the archive; return how many files it holds."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(archive, "w") as tar:
        for split in packed_splits(root, exclude):
            for path in packed_files(split, max_val):
                data, suffix = compact(np.asarray(Image.open(path)))
                info = tarfile.TarInfo(str(path.relative_to(root).with_suffix(suffix)))
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                count += 1
    return count


def unpack(archive: Path, dest: Path) -> int:
    """Write every packed file under dest as a PNG of the packed pixels; return how many."""
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            pixels = _decoded(Image.open(tar.extractfile(member)))
            path = dest / Path(member.name).with_suffix(".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack")
    packing.add_argument("data_root", type=Path)
    packing.add_argument("archive", type=Path)
    packing.add_argument("--exclude", nargs="*", default=["train_sam"], help="split names left out")
    packing.add_argument("--max-val", type=int, default=None, help="pack at most this many scans of a val split")
    unpacking = commands.add_parser("unpack")
    unpacking.add_argument("archive", type=Path)
    unpacking.add_argument("dest", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        count = pack(args.data_root.resolve(), args.archive, set(args.exclude), args.max_val)
        print(f"{count} files, {args.archive.stat().st_size / 2**20:.1f} MiB: {args.archive}")
    else:
        print(f"{unpack(args.archive, args.dest)} files: {args.dest}")


if __name__ == "__main__":
    main()
