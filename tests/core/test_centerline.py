from __future__ import annotations

import numpy as np
import pytest

from napari_octanet.core.centerline import centerline_from_label


def test_a_thick_bar_becomes_a_one_pixel_line_along_its_axis():
    mask = np.zeros((15, 40), dtype=np.uint8)
    mask[5:10, 5:35] = 255
    centerline = centerline_from_label(mask)
    assert centerline.dtype == bool
    middle = centerline[:, 10:30]  # away from the bar's ends, where skeletons may bend
    assert middle.sum(axis=0).tolist() == [1] * 20  # one pixel per column
    assert set(np.nonzero(middle)[0]) == {7}  # on the bar's middle row
    assert not (centerline & (mask == 0)).any()


def test_empty_mask_has_no_centerline_and_stacks_are_refused():
    assert not centerline_from_label(np.zeros((8, 8), bool)).any()
    with pytest.raises(ValueError, match=r"shape \(2, 8, 8\).*once per slice"):
        centerline_from_label(np.zeros((2, 8, 8), bool))
