from __future__ import annotations

import numpy as np
import pytest

from napari_octanet.core.metrics import evaluate_image
from napari_octanet.core.thresholds import binarise, drop_specks, parse_speck_size


def _mask_with_pieces() -> np.ndarray:
    """A 25-pixel vessel, a 21-pixel diagonal (one piece only 8-connected) and a 3-pixel speck."""
    mask = np.zeros((40, 40), bool)
    mask[2, 5:30] = True
    mask[np.arange(10, 31), np.arange(10, 31)] = True
    mask[35, 35:38] = True
    return mask


def test_pieces_up_to_the_speck_size_are_dropped_and_larger_ones_kept_whole():
    mask = _mask_with_pieces()
    speck = np.zeros_like(mask)
    speck[35, 35:38] = True
    np.testing.assert_array_equal(drop_specks(mask, 20), mask & ~speck)
    np.testing.assert_array_equal(drop_specks(mask, 3), mask & ~speck)
    np.testing.assert_array_equal(drop_specks(mask, 2), mask)
    np.testing.assert_array_equal(drop_specks(mask, 0), mask)
    assert not drop_specks(mask, 25).any(), "the 25-pixel vessel is at most 25 pixels, so it goes too"


def test_binarise_drops_specks_per_slice_after_the_threshold():
    first = _mask_with_pieces()
    second = np.zeros_like(first)
    second[20, 0:4] = True
    probability = np.stack([first, second]).astype(np.float32) * 0.8 + 0.1
    masks = binarise(probability, 0.5, speck_size=20)
    np.testing.assert_array_equal(masks[0], drop_specks(first, 20))
    assert not masks[1].any()
    np.testing.assert_array_equal(binarise(probability, 0.5), probability > 0.5)


def test_evaluate_image_scores_the_mask_without_specks_when_asked():
    label = np.zeros((40, 40), bool)
    label[2, 5:30] = True
    probability = np.where(_mask_with_pieces(), 0.9, 0.1).astype(np.float32)
    assert evaluate_image(probability, label, threshold=0.5)["dice"] == pytest.approx(2 * 25 / (25 + 49))
    assert evaluate_image(probability, label, threshold=0.5, speck_size=21)["dice"] == 1.0


@pytest.mark.parametrize(("value", "message"), [("-1", "negative"), ("2.5", "whole number"), ("lots", "whole number")])
def test_bad_speck_sizes_are_refused_with_a_message_naming_them(value: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_speck_size(value)
    assert parse_speck_size(" 7 ") == 7
