from __future__ import annotations

import math

import numpy as np
import pytest

from napari_octanet.core.metrics import (
    METRIC_KEYS,
    auc,
    binary_metrics,
    confusion,
    evaluate_image,
    summarise,
)

PRED = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
LABEL = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=np.uint8) * 255


def test_confusion_and_metrics_match_a_hand_counted_table():
    assert confusion(PRED, LABEL) == (2, 1, 1, 5)
    metrics = binary_metrics(PRED, LABEL)
    expected = {
        "acc": 7 / 9,
        "sen": 2 / 3,
        "spe": 5 / 6,
        "fdr": 1 / 3,
        "gmean": math.sqrt(2 / 3 * 5 / 6),
        "kappa": 0.5,  # observed 7/9, chance (3*3 + 6*6)/81 = 5/9
        "iou": 2 / 4,
        "dice": 4 / 6,
    }
    assert metrics == pytest.approx(expected)


def test_tolerance_counts_four_neighbours_of_the_label_as_hits():
    label = np.zeros((5, 5), dtype=bool)
    label[2, 2] = True
    pred = np.zeros((5, 5), dtype=bool)
    pred[2, 3] = True  # next to the vessel: a hit with tolerance
    pred[3, 3] = True  # diagonal: outside the 3x3 ellipse
    pred[0, 0] = True
    assert confusion(pred, label) == (0, 3, 1, 21)
    assert confusion(pred, label, tolerance=True) == (1, 2, 1, 21)
    assert binary_metrics(pred, label, tolerance=True)["dice"] == pytest.approx(2 / (2 + 2 + 1))


def test_undefined_metrics_are_nan_not_a_made_up_perfect_score():
    empty = np.zeros((4, 4), dtype=bool)
    nothing = binary_metrics(empty, empty)
    assert nothing["acc"] == nothing["spe"] == 1.0
    assert all(math.isnan(nothing[key]) for key in ("sen", "fdr", "gmean", "kappa", "iou", "dice"))
    some = empty.copy()
    some[0, :2] = True
    no_vessel = binary_metrics(some, empty)  # a label without vessels: SEN and G-mean are undefined
    assert math.isnan(no_vessel["sen"]) and math.isnan(no_vessel["gmean"])
    assert (no_vessel["spe"], no_vessel["fdr"], no_vessel["dice"], no_vessel["iou"]) == (14 / 16, 1.0, 0.0, 0.0)
    missed = binary_metrics(empty, some)  # nothing predicted: FDR is undefined, Dice is 0
    assert math.isnan(missed["fdr"]) and missed["sen"] == 0.0 and missed["dice"] == 0.0
    all_wrong = binary_metrics(~empty, empty)
    assert (all_wrong["spe"], all_wrong["fdr"], all_wrong["dice"]) == (0.0, 1.0, 0.0) and math.isnan(all_wrong["sen"])
    assert math.isnan(auc(np.random.default_rng(0).random((4, 4)), empty))


def test_normal_images_keep_the_reference_codes_values():
    """The ROSE reference code adds 1e-12 to each denominator; away from empty ones it agrees with ours."""
    tp, fp, fn, tn = confusion(PRED, LABEL)
    metrics = binary_metrics(PRED, LABEL)
    reference = {
        "sen": tp / (fn + tp + 1e-12),
        "spe": tn / (fp + tn + 1e-12),
        "fdr": fp / (fp + tp + 1e-12),
        "iou": tp / (fp + fn + tp + 1e-12),
        "dice": 2.0 * tp / (fp + fn + 2.0 * tp + 1e-12),
    }
    assert {key: metrics[key] for key in reference} == pytest.approx(reference, rel=1e-9)


def test_auc_equals_brute_force_pairwise_comparison_with_ties():
    rng = np.random.default_rng(1)
    label = rng.random((12, 13)) < 0.3
    probability = np.round(rng.random(label.shape) * 0.6 + label * 0.3, 1)  # coarse: many ties
    positives, negatives = probability[label], probability[~label]
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    expected = (greater + 0.5 * ties) / (positives.size * negatives.size)
    assert ties > 0
    assert auc(probability, label) == pytest.approx(expected, abs=1e-12)


def test_auc_of_perfect_and_reversed_scores():
    label = np.array([[0, 1], [1, 0]], dtype=bool)
    assert auc(label * 0.8 + 0.1, label) == 1.0
    assert auc(1 - label * 0.8, label) == 0.0
    assert auc(np.full(label.shape, 0.5), label) == 0.5


def test_evaluate_image_thresholds_with_otsu_and_adds_auc():
    rng = np.random.default_rng(2)
    label = rng.random((32, 32)) < 0.2
    probability = np.where(label, 0.8, 0.2) + rng.normal(0, 0.02, label.shape)
    metrics = evaluate_image(probability, label)
    assert set(metrics) == set(METRIC_KEYS)
    assert metrics["dice"] == 1.0 and metrics["auc"] == 1.0
    assert evaluate_image(probability, label, threshold=0.9)["sen"] == 0.0


def test_mismatched_shapes_are_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(3, 4\)"):
        binary_metrics(PRED, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(3, 4\)"):
        evaluate_image(np.zeros((3, 3)), np.zeros((3, 4)))


def test_summarise_means_stds_and_skips_undefined_auc():
    per_image = [
        {**dict.fromkeys(METRIC_KEYS, 0.5), "dice": 0.2, "auc": 0.9},
        {**dict.fromkeys(METRIC_KEYS, 0.5), "dice": 0.6, "auc": math.nan},
    ]
    summary = summarise(per_image)
    assert summary["dice"] == pytest.approx(0.4)
    assert summary["dice_std"] == pytest.approx(0.2)
    assert summary["auc"] == pytest.approx(0.9) and summary["auc_std"] == 0.0
    assert summary["kappa"] == 0.5 and summary["kappa_std"] == 0.0
    assert summary["n_images"] == 2
    assert summary["auc_n"] == 1 and summary["dice_n"] == 2


def test_summarise_leaves_a_label_without_vessels_out_of_sen_and_says_over_how_many():
    vessels = np.zeros((4, 4), dtype=bool)
    vessels[1, :] = True
    scored = [binary_metrics(vessels, vessels), binary_metrics(vessels, np.zeros_like(vessels))]
    summary = summarise(scored)
    assert summary["sen"] == 1.0 and summary["sen_n"] == 1 and summary["gmean_n"] == 1
    assert summary["acc_n"] == 2 and summary["n_images"] == 2


def test_summarise_keeps_only_keys_every_image_has():
    summary = summarise([binary_metrics(PRED, LABEL), binary_metrics(PRED, LABEL)])
    assert "auc" not in summary and summary["dice"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="at least one image"):
        summarise([])
