"""``python -m napari_octanet [IMAGE ...]``: napari with the images (or the sample) and the Segment vessels dock.

The same as ``napari --plugin napari-octanet IMAGE -w napari-octanet "Segment vessels"``, plus the
synthetic sample when no image is given, so that a first run has something to segment.
"""

from __future__ import annotations

import argparse
import sys

PLUGIN = "napari-octanet"
SEGMENT_DOCK = "Segment vessels"
SAMPLE = "synthetic_octa"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_octanet", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="OCTA images or ROSE/OCTA-500 folders to open")
    parser.add_argument("--train", action="store_true", help="also dock the Fine-tune panel")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title="napari-octanet")
    if args.images:
        viewer.open(args.images, plugin=PLUGIN)
    else:
        viewer.open_sample(PLUGIN, SAMPLE)
    viewer.window.add_plugin_dock_widget(PLUGIN, SEGMENT_DOCK)
    if args.train:
        viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    # The docks narrow the canvas after the image was fitted to it: fit again once the window is laid out.
    QTimer.singleShot(0, viewer.reset_view)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
