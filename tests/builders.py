"""Small synthetic dataset trees in the ROSE-1, ROSE-2 and image/label-pairs layouts, for tests.

Images are uint8 noise with brighter vessels; labels are 8-bit 0/255 masks of a few straight
vessels. ``thick_gt`` is the vessel mask, ``thin_gt`` its skeleton, ``gt`` their union.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import numpy as np
import tifffile
from skimage import io
from skimage.draw import line
from skimage.morphology import dilation, disk, skeletonize

ROSE1_LAYERS = ("SVC", "DVC", "SVC_DVC")
PAIRS_SETS = {"OCTA500_3M": ("train", "val"), "ROSSA": ("train_manual", "train_sam", "val")}


def _seed(*parts: object) -> int:
    """A seed that is the same in every run (``hash`` of strings is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def write_image(path: Path, array: np.ndarray) -> Path:
    """Write with tifffile for .tif/.tiff and scikit-image otherwise; parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, array)
    else:
        io.imsave(path, array, check_contrast=False)
    return path


def vessel_mask(size: int, seed: int) -> np.ndarray:
    """A boolean mask of four random straight vessels, three pixels wide."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(4):
        r0, c0, r1, c1 = rng.integers(0, size, 4)
        mask[line(r0, c0, r1, c1)] = True
    return dilation(mask, disk(1))


def octa_like(mask: np.ndarray, seed: int) -> np.ndarray:
    """uint8 noise in [0, 100) with the mask's vessels at 200."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 100, mask.shape).astype(np.uint8)
    image[mask] = 200
    return image


def as_8bit_label(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def make_rose1_tree(
    root: Path,
    n: int = 2,
    size: int = 64,
    layers: tuple[str, ...] = ROSE1_LAYERS,
    splits: tuple[str, ...] = ("train", "test"),
) -> Path:
    """``root/ROSE-1/<layer>/<split>/{img,gt[,thick_gt,thin_gt]}/NN.tif``; returns ``root/ROSE-1``."""
    dataset = Path(root) / "ROSE-1"
    for layer in layers:
        for split in splits:
            for i in range(1, n + 1):
                seed = _seed(layer, split, i)
                thick = vessel_mask(size, seed)
                thin = skeletonize(thick)
                folder = dataset / layer / split
                name = f"{i:02d}.tif"
                write_image(folder / "img" / name, octa_like(thick, seed))
                write_image(folder / "gt" / name, as_8bit_label(thick | thin))
                if layer == "SVC":
                    write_image(folder / "thick_gt" / name, as_8bit_label(thick))
                    write_image(folder / "thin_gt" / name, as_8bit_label(thin))
    return dataset


def make_rose2_tree(root: Path, n: int = 2, size: int = 64, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """``root/ROSE-2/<split>/{original,gt}/<i>_OD_SVP.png`` with centerline labels; returns ``root/ROSE-2``."""
    dataset = Path(root) / "ROSE-2"
    for split in splits:
        for i in range(1, n + 1):
            seed = _seed("rose2", split, i)
            thick = vessel_mask(size, seed)
            name = f"{i}_OD_SVP.png"
            write_image(dataset / split / "original" / name, octa_like(thick, seed))
            write_image(dataset / split / "gt" / name, as_8bit_label(skeletonize(thick)))
    return dataset


def make_pairs_tree(root: Path, n: int = 2, size: int = 64, sets: dict[str, tuple[str, ...]] | None = None) -> Path:
    """``root/<set>/<split>/{image,label}/<id>.png`` (octa-dev's layout); returns ``root``."""
    root = Path(root)
    for set_name, splits in (sets or PAIRS_SETS).items():
        for split in splits:
            for i in range(1, n + 1):
                seed = _seed(set_name, split, i)
                mask = vessel_mask(size, seed)
                write_image(root / set_name / split / "image" / f"{i}.png", octa_like(mask, seed))
                write_image(root / set_name / split / "label" / f"{i}.png", as_8bit_label(mask))
    return root


def octanet_command(*arguments: str, ranks: int = 1, port: int = 29531) -> list[str]:
    """The ``octanet`` command line as a subprocess runs it; with ``ranks`` > 1, under torchrun on the CPU."""
    launcher = [sys.executable, "-m"]
    if ranks > 1:
        launcher += ["torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port", str(port), "-m"]
    return [*launcher, "napari_octanet.cli", *arguments]


def one_thread_environment() -> dict[str, str]:
    """The environment for subprocesses that share this machine's cores (one OpenMP thread each)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}
