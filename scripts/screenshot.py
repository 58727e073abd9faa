"""Take the README screenshot: napari with an OCTA image, the "Segment vessels" and "Measure vessels" docks
and their results, at 1280 x 800 unless --size says otherwise.

Run under a virtual display on a headless machine, once trained weights exist:

    OMP_NUM_THREADS=1 xvfb-run -a .venv/bin/python scripts/screenshot.py --image 10181.png --model default
    OMP_NUM_THREADS=1 xvfb-run -a .venv/bin/python scripts/screenshot.py --loop

The image is opened through the plugin's reader, as a user opens it: an OCTA-500 3M or 6M scan (the
README's: OCTA500_6M/val/image/10181.png) gets its pixel size as the layer's scale, which both docks
then show and use.

``--loop`` shows the correct-and-retrain loop instead, in under a minute on one CPU thread: a synthetic
scan segmented by the bundled model, its ``corrections`` layer with a painted stroke, the Fine-tune
dock scrolled to its loss curve after a 2+1-epoch fine-tune of the bundled ``default`` model, the
Segment dock's status line, and the re-run result. Writes docs/correct-and-retrain.png.

The docks come from the plugin's manifest, as a user gets them; the jobs run synchronously so the
picture shows their results. Writes docs/segment-widget.png unless --output says otherwise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="a 2D OCTA image (tif, png, ...)")
    parser.add_argument("--model", help="a registered model name (e.g. default) or a checkpoint path")
    parser.add_argument("--loop", action="store_true", help="the correct-and-retrain loop on a synthetic scan")
    parser.add_argument("--output", type=Path, help="default: docs/segment-widget.png, or docs/correct-and-retrain.png")
    parser.add_argument("--size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"), default=(1280, 800))
    args = parser.parse_args(argv)
    if not args.loop and (args.image is None or args.model is None):
        parser.error("--image and --model are needed (or --loop)")
    args.output = args.output or REPO / "docs" / ("correct-and-retrain.png" if args.loop else "segment-widget.png")
    return args


def paint_a_correction(corrections: np.ndarray) -> None:
    """What a user does in the corrections layer: paint a missed vessel (a stroke wide enough to see), erase
    false ones in a corner."""
    size = corrections.shape[-1]
    rows = np.arange(size // 5, size // 2)
    for offset in range(-2, 3):
        corrections[rows, rows + size // 4 + offset] = 1
    corrections[size - size // 5 :, : size // 5] = 0


def loop_screenshot(args: argparse.Namespace) -> None:
    """Segment, correct, fine-tune briefly and see the re-run result, as a user would in the two docks."""
    import tempfile

    os.environ["NAPARI_OCTANET_MODELS"] = tempfile.mkdtemp(prefix="octanet-models-")  # not the user's library
    import napari
    import torch
    from qtpy.QtWidgets import QScrollArea

    from napari_octanet.core.synthetic import synthetic_octa

    torch.set_num_threads(1)
    scan, _ = synthetic_octa(size=256, seed=3)
    viewer = napari.Viewer(title="napari-octanet", show=True)
    viewer.window.resize(*args.size)
    viewer.add_image(scan, name="scan")
    _, segment = viewer.window.add_plugin_dock_widget("napari-octanet", "Segment vessels")
    _, train = viewer.window.add_plugin_dock_widget("napari-octanet", "Fine-tune")
    segment.select_model("default")
    segment.segment()
    segment.make_corrections_layer()
    corrections = viewer.layers["scan corrections"]
    paint_a_correction(corrections.data)
    corrections.refresh()
    settings = {widget.label: widget for widget in train.form}
    settings["epochs (SCS)"].value = 2
    settings["epochs (SRS)"].value = 1
    settings["batch size"].value = 2  # the least batch norm takes: fast on one thread
    settings["validation"].value = 0.0
    settings["model name"].value = "loop-demo"
    train.train()  # the Segment dock then selects the new model and segments the scan again
    viewer.layers["scan vessels"].visible = True
    viewer.layers.selection.active = corrections
    settle()  # lay the docks out first, so that the scroll ranges are final
    for dock in (segment, train):  # the Segment status line and the Fine-tune loss curve in view
        dock.native.findChild(QScrollArea).verticalScrollBar().setValue(10**6)
    viewer.reset_view()
    take(viewer, args.output)


def settle() -> None:
    """A few passes of the event loop: the docks' layouts and the canvas catch up."""
    import time

    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)


def take(viewer, output: Path) -> None:
    settle()
    output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(output), canvas_only=False)
    print(f"wrote {output}")
    viewer.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["NAPARI_OCTANET_SYNC"] = "1"  # the docks run their jobs inline: the results are there to capture
    from napari.utils.notifications import notification_manager

    notification_manager.notification_ready.connect(lambda note: print(f"{note.severity}: {note.message}"))
    if args.loop:
        loop_screenshot(args)
    else:
        dock_screenshot(args)


def dock_screenshot(args: argparse.Namespace) -> None:
    """Segment the image and measure its mask, as a user would in the two docks."""
    import napari

    if not args.image.is_file():
        raise SystemExit(f"image {args.image} does not exist")
    viewer = napari.Viewer(title="napari-octanet", show=True)
    viewer.window.resize(*args.size)
    (scan,) = viewer.open(str(args.image), plugin="napari-octanet")
    _, segment = viewer.window.add_plugin_dock_widget("napari-octanet", "Segment vessels")
    _, measure = viewer.window.add_plugin_dock_widget("napari-octanet", "Measure vessels")
    segment.select_model(args.model)
    segment.segment()
    if f"{scan.name} vessels" not in viewer.layers:
        raise SystemExit("the segmentation wrote no layers (see the notification above); no screenshot taken")
    viewer.layers[f"{scan.name} vessel probability"].visible = False  # show the mask over the scan
    measure.form["vessels"].value = viewer.layers[f"{scan.name} vessels"]
    measure.measure()
    print(f"Segment status: {segment.controls.status.value}\nMeasure status: {measure.controls.status.value}")
    viewer.layers.selection.active = scan
    settle()
    share_the_height(segment, measure)
    settle()
    viewer.reset_view()  # the dock narrowed the canvas after the image was fitted to it
    take(viewer, args.output)


def share_the_height(segment, measure) -> None:
    """The two docks stacked, each about half the height: Segment from its top (the image and its pixel size),
    Measure scrolled to its status line and table."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtWidgets import QDockWidget, QScrollArea

    docks = [widget.native for widget in (segment, measure)]
    while not all(isinstance(dock, QDockWidget) for dock in docks):
        docks = [dock if isinstance(dock, QDockWidget) else dock.parentWidget() for dock in docks]
    height = segment.native.window().height() // 2
    segment.native.window().resizeDocks(docks, [height, height], Qt.Orientation.Vertical)
    settle()
    scroll_area = measure.native.findChild(QScrollArea)
    top_of_controls = measure.controls.native.mapTo(scroll_area.widget(), QPoint(0, 0)).y()
    scroll_area.verticalScrollBar().setValue(top_of_controls)


if __name__ == "__main__":
    main()
