"""Val scans at other pixel sizes, as other devices and fields of view give them (benchmarks only).

A scan and its label are resampled alike: the image bilinearly (antialiased when shrunk), the label's
0/1 plane bilinearly and re-thresholded at 0.5, as issue #33's table was measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.transform import resize

from napari_octanet.core.imageio import read_image, read_label
from napari_octanet.core.layouts import index_dataset
from napari_octanet.core.scale import pixel_size_of_path

#: (data set, factor) pairs of the benchmark: the factor multiplies the side in pixels.
CASES = (
    ("OCTA500_3M", 1.0),
    ("OCTA500_3M", 0.75),
    ("OCTA500_3M", 1.5),
    ("OCTA500_3M", 2.0),
    ("OCTA500_6M", 1.0),
    ("OCTA500_6M", 1.3),
    ("ROSSA", 1.0),
)


@dataclass(frozen=True)
class Scan:
    name: str
    image: np.ndarray
    label: np.ndarray
    #: µm per pixel after resampling; None where the data set states none.
    pixel_size_um: float | None


def resample(image: np.ndarray, label: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The scan (float in [0, 1]) and its boolean label with sides multiplied by ``factor``."""
    image = np.asarray(image, dtype=np.float32)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    if factor == 1.0:
        return image, np.asarray(label) > 0
    shape = tuple(round(side * factor) for side in image.shape[-2:])
    shrink = factor < 1
    scaled = resize(image, shape, order=1, anti_aliasing=shrink, preserve_range=True).astype(np.float32)
    labels = resize((np.asarray(label) > 0).astype(np.float32), shape, order=1, anti_aliasing=shrink) > 0.5
    return scaled, labels


def val_scans(data: Path, dataset: str, factor: float, split: str = "val") -> Iterator[Scan]:
    """The val split of one data set at ``factor`` times its sides."""
    for sample in index_dataset(data / dataset, "pairs", split).samples:
        image = read_image(sample.image)
        image = image if image.ndim == 2 else image[..., :3].mean(-1)
        native = pixel_size_of_path(sample.image, image.shape[-1])
        scaled, label = resample(image, read_label(sample.label), factor)
        yield Scan(sample.stem, scaled, label, None if native is None else native / factor)


def write_resampled_split(data: Path, dataset: str, factor: float, out: Path) -> int:
    """Write the val split of one data set at ``factor`` times its sides as ``out/{image,label}/NAME.png``.

    Training validates on these beside the native splits (scripts/train_default_model.sh), so that
    model selection weighs other pixel sizes too. Returns the number of scans written.
    """
    from skimage.io import imsave

    (out / "image").mkdir(parents=True, exist_ok=True)
    (out / "label").mkdir(parents=True, exist_ok=True)
    count = 0
    for scan in val_scans(data, dataset, factor):
        imsave(out / "image" / f"{scan.name}.png", (scan.image * 255).round().astype(np.uint8), check_contrast=False)
        imsave(out / "label" / f"{scan.name}.png", (scan.label * 255).astype(np.uint8), check_contrast=False)
        count += 1
    return count


if __name__ == "__main__":
    import sys

    # python benchmarks/_resampled.py DATA DATASET FACTOR OUT
    data_root, dataset_name, side_factor, out_folder = sys.argv[1:5]
    print(write_resampled_split(Path(data_root), dataset_name, float(side_factor), Path(out_folder)), "scans written")
