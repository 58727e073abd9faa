from __future__ import annotations

import numpy as np

from napari_octanet.plugin.sample_data import synthetic_octa


def test_sample_data_returns_an_image_and_its_labels():
    (image, image_meta, image_type), (label, label_meta, label_type) = synthetic_octa()
    assert (image_type, label_type) == ("image", "labels")
    assert image.shape == label.shape == (304, 304)
    assert image.dtype == np.uint8 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1}
    assert image_meta["name"] == "synthetic OCTA" and label_meta["name"] == "synthetic OCTA ground truth"


def test_sample_data_opens_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-octanet", "synthetic_octa")
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels"]
    assert viewer.layers["synthetic OCTA ground truth"].data.max() == 1
    assert "synthetic OCTA vessels" not in viewer.layers  # the name a segmentation result takes
