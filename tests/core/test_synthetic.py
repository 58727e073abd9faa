from __future__ import annotations

import numpy as np
import pytest

from napari_octanet.core.synthetic import synthetic_octa, synthetic_set


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_dtypes_and_plausible_vessel_fraction(size):
    image, label = synthetic_octa(size=size, seed=3)
    assert image.shape == label.shape == (size, size)
    assert image.dtype == np.uint8 and label.dtype == bool
    assert 0.05 <= label.mean() <= 0.30


def test_vessels_are_brighter_than_background_and_the_centre_is_dark():
    image, label = synthetic_octa(size=128, seed=1)
    assert image[label].mean() > image[~label].mean() + 50
    centre = image[56:72, 56:72]
    assert centre.mean() < 0.6 * image[~label].mean()  # the foveal avascular zone


def test_same_seed_same_image_other_seed_other_image():
    first, first_label = synthetic_octa(size=96, seed=7)
    again, again_label = synthetic_octa(size=96, seed=7)
    other, other_label = synthetic_octa(size=96, seed=8)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_label, again_label)
    assert not np.array_equal(first_label, other_label)


def test_synthetic_set_is_seed_plus_index():
    pairs = synthetic_set(2, size=64, seed=5)
    assert len(pairs) == 2
    np.testing.assert_array_equal(pairs[1][0], synthetic_octa(size=64, seed=6)[0])


def test_too_small_size_is_refused():
    with pytest.raises(ValueError, match="size 8 is too small"):
        synthetic_octa(size=8)
