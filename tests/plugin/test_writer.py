"""The npe2 writers: File > Save Selected Layer(s) of a vessel mask (PNG, TIFF) and of an image (TIFF)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage.io import imread

from napari_octanet.plugin.reader import get_reader
from napari_octanet.plugin.writer import write_labels


def mask() -> np.ndarray:
    data = np.zeros((40, 48), np.uint8)
    data[10:20, 5:30] = 1
    return data


def test_a_vessel_mask_round_trips_through_png(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(mask(), name="scan vessels")

    written = viewer.layers.save(str(tmp_path / "vessels.png"), selected=False, plugin="napari-octanet")

    assert written == [str(tmp_path / "vessels.png")]
    stored = imread(tmp_path / "vessels.png")
    np.testing.assert_array_equal(stored, layer.data * 255)  # a 0/255 mask every viewer shows
    data, _, kind = get_reader(written[0])(written[0])[0]
    assert kind == "image" and (data > 0).sum() == layer.data.sum()


def test_labels_keep_their_values_and_stacks_go_to_tiff(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    labels = np.stack([mask() * 3, mask().astype(np.uint16) * 300])
    viewer.add_labels(labels, name="stack labels")

    viewer.layers.save(str(tmp_path / "labels.tif"), selected=False, plugin="napari-octanet")

    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), labels)
    with pytest.raises(ValueError, match=r"save it as \.tif"):  # PNG holds one 2D image
        write_labels(str(tmp_path / "labels.png"), labels, {})
    assert not (tmp_path / "labels.png").exists()


def test_an_image_layer_round_trips_through_tiff(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    probability = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    viewer.add_image(probability, name="scan vessel probability")

    viewer.layers.save(str(tmp_path / "probability.tif"), selected=False, plugin="napari-octanet")

    np.testing.assert_array_equal(tifffile.imread(tmp_path / "probability.tif"), probability)
    with tifffile.TiffFile(tmp_path / "probability.tif") as tif:  # three slices, not one RGB image
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
