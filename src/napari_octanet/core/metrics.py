"""Vessel segmentation metrics under the ROSE paper's protocol.

Per image: AUC on the probability map; the binary metrics after an Otsu threshold of the 8-bit
map. For centerline-level labels a tolerance applies: a predicted pixel is a true positive when
it lies within the label dilated by a 3x3 ellipse (a cross), while false negatives and true
negatives are counted against the undilated label. Dataset figures are means over images.

A metric whose denominator is empty is undefined (NaN), never given a made-up value: SEN with
no vessel in the label, SPE with no background, FDR with no predicted vessel, IoU and Dice when
prediction and label are both empty, kappa when both are one and the same class everywhere,
G-mean when SEN or SPE is, and AUC when the label holds a single class. The reference code adds
1e-12 to each denominator (so scores 0 there, and fails on AUC); on every other image its
values and these agree. Dataset means leave undefined values out, and say over how many images
each was taken (``<key>_n``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata
from skimage.morphology import dilation, disk

from .thresholds import Threshold, binarise

BINARY_KEYS = ("acc", "sen", "spe", "fdr", "gmean", "kappa", "iou", "dice")
METRIC_KEYS = ("dice", "auc", *(key for key in BINARY_KEYS if key != "dice"))
#: The 3x3 ellipse of the paper's tolerance: the centre and its four neighbours.
TOLERANCE_FOOTPRINT = disk(1)


def confusion(pred: np.ndarray, label: np.ndarray, tolerance: bool = False) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of a binary prediction against a binary label of the same shape.

    The tolerance dilates in 2D, so it needs 2D images.
    """
    pred, label = _as_masks(pred, label)
    hits = dilation(label, TOLERANCE_FOOTPRINT) if tolerance else label
    tp = int(np.count_nonzero(pred & hits))
    fp = int(np.count_nonzero(pred & ~hits))
    fn = int(np.count_nonzero(~pred & label))
    tn = int(np.count_nonzero(~pred & ~label))
    return tp, fp, fn, tn


def binary_metrics(pred: np.ndarray, label: np.ndarray, tolerance: bool = False) -> dict[str, float]:
    """ACC, SEN, SPE, FDR, G-mean, Cohen's kappa, IoU and Dice of one binary prediction."""
    tp, fp, fn, tn = confusion(pred, label, tolerance)
    total = tp + fp + fn + tn
    sen = _ratio(tp, tp + fn)
    spe = _ratio(tn, tn + fp)
    return {
        "acc": (tp + tn) / total,
        "sen": sen,
        "spe": spe,
        "fdr": _ratio(fp, fp + tp),
        "gmean": math.sqrt(sen * spe),
        "kappa": _kappa(tp, fp, fn, tn),
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def auc(probability: np.ndarray, label: np.ndarray) -> float:
    """Exact ROC AUC: the Mann-Whitney probability that a vessel pixel outscores a background one.

    Tied scores count one half (average ranks). NaN when the label has only one class.
    """
    probability, label = np.asarray(probability, dtype=np.float64), np.asarray(label)
    if probability.shape != label.shape:
        raise ValueError(f"probability has shape {probability.shape} but the label has shape {label.shape}")
    positive = label.astype(bool).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(rankdata(probability.ravel())[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def evaluate_image(
    probability: np.ndarray,
    label: np.ndarray,
    threshold: Threshold = "otsu",
    tolerance: bool = False,
    speck_size: int = 0,
) -> dict[str, float]:
    """All metrics of one 2D probability map: binary metrics of its mask (``binarise``), and AUC."""
    probability = np.asarray(probability)
    if probability.ndim != 2 or probability.shape != np.shape(label):
        raise ValueError(
            f"evaluate_image takes one 2D probability map and a label of its shape, got shapes "
            f"{probability.shape} and {np.shape(label)}"
        )
    metrics = binary_metrics(binarise(probability, threshold, speck_size), label, tolerance)
    metrics["auc"] = auc(probability, label)
    return metrics


def summarise(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Mean and (population) standard deviation over images of each metric all images have.

    Means are under the metric's own key, deviations under ``<key>_std`` and the number of
    images the metric is defined on under ``<key>_n``; NaN values (undefined, see the module
    docstring) are left out of all three, and a metric that is NaN everywhere stays NaN.
    """
    if not per_image:
        raise ValueError("summarise needs the metrics of at least one image")
    summary: dict[str, float] = {}
    for key in METRIC_KEYS:
        if all(key in metrics for metrics in per_image):
            values = np.array([metrics[key] for metrics in per_image], dtype=np.float64)
            defined = values[~np.isnan(values)]
            summary[key] = float(defined.mean()) if defined.size else math.nan
            summary[f"{key}_std"] = float(defined.std()) if defined.size else math.nan
            summary[f"{key}_n"] = int(defined.size)
    summary["n_images"] = len(per_image)
    return summary


def _as_masks(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, label = np.asarray(pred), np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f"prediction has shape {pred.shape} but the label has shape {label.shape}")
    if pred.size == 0:
        raise ValueError("cannot score an empty image")
    return pred.astype(bool), label.astype(bool)


def _ratio(numerator: float, denominator: float) -> float:
    """The ratio, or NaN (undefined) when the denominator is empty."""
    return numerator / denominator if denominator else math.nan


def _kappa(tp: int, fp: int, fn: int, tn: int) -> float:
    """Cohen's kappa of the 2x2 table: agreement beyond what the marginals give by chance."""
    total = tp + fp + fn + tn
    observed = (tp + tn) / total
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / total**2
    return _ratio(observed - chance, 1.0 - chance)
