"""Take the README screenshot: napari with an OCTA image, the "Segment vessels" dock and its result.

Run under a virtual display on a headless machine, once trained weights exist:

    xvfb-run -a .venv/bin/python scripts/screenshot.py --image scan.png --model default

The dock comes from the plugin's manifest, as a user gets it; the segmentation runs synchronously
so the picture shows its result. Writes docs/segment-widget.png unless --output says otherwise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True, help="a 2D OCTA image (tif, png, ...)")
    parser.add_argument("--model", required=True, help="a registered model name (e.g. default) or a checkpoint path")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "segment-widget.png")
    parser.add_argument("--size", type=int, nargs=2, default=(1400, 860), metavar=("WIDTH", "HEIGHT"))
    return parser.parse_args(argv)


def read_image(path: Path) -> np.ndarray:
    from skimage.io import imread

    if not path.is_file():
        raise SystemExit(f"image {path} does not exist")
    return np.asarray(imread(path))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["NAPARI_OCTANET_SYNC"] = "1"  # the dock runs the job inline: the result is there to capture
    import napari
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QApplication

    notification_manager.notification_ready.connect(lambda note: print(f"{note.severity}: {note.message}"))

    data = read_image(args.image)
    viewer = napari.Viewer(title="napari-octanet", show=True)
    viewer.window.resize(*args.size)
    viewer.add_image(data, name=args.image.stem, rgb=data.ndim == 3 and data.shape[-1] in (3, 4))
    _, widget = viewer.window.add_plugin_dock_widget("napari-octanet", "Segment vessels")
    widget.select_model(args.model)
    widget.segment()
    if f"{args.image.stem} vessels" not in viewer.layers:
        raise SystemExit("the segmentation wrote no layers (see the notification above); no screenshot taken")
    viewer.layers[f"{args.image.stem} vessel probability"].visible = False  # show the mask over the scan
    viewer.layers.selection.active = viewer.layers[args.image.stem]
    QApplication.processEvents()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.output), canvas_only=False)
    print(f"wrote {args.output}")
    viewer.close()


if __name__ == "__main__":
    main()
