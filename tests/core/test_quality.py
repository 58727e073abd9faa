"""Per-scan confidence and artefact flags (core.quality): what a reviewer sorts and filters scans by."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_octanet.core.checkpoint import LoadedModel, load_model
from napari_octanet.core.inference import Segmentation, segment
from napari_octanet.core.quality import (
    DEFAULT_CALIBRATION,
    FEATURES,
    PROVENANCE_KEY,
    Calibration,
    artefact_flags,
    assess,
    fit_calibration,
    inspect_scan,
    model_calibration,
    predict_confidence,
    scan_features,
)
from napari_octanet.core.quality.simulate import RECIPES, STRENGTHS, simulate
from napari_octanet.core.registry import bundled_checkpoint
from napari_octanet.core.synthetic import synthetic_octa

SIZE = 256


def clean_scan(seed: int = 0) -> np.ndarray:
    """A synthetic scan whose speckle spans a pixel or so, as a device's does (core.synthetic's is white)."""
    image, _ = synthetic_octa(SIZE, seed)
    return np.round(gaussian_filter(image.astype(np.float64), 0.6)).astype(np.uint8)


def flag_names(image: np.ndarray) -> list[str]:
    return [flag.name for flag in artefact_flags(image)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_scan_gets_no_flags(seed: int) -> None:
    assert artefact_flags(clean_scan(seed)) == []


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda recipe: recipe.name)
@pytest.mark.parametrize("strength", ["moderate", "severe"])
def test_a_damaged_scan_gets_the_flag_of_its_artefact(recipe, strength: str) -> None:
    damaged = simulate(clean_scan(1), recipe.name, strength, seed=3)
    assert flag_names(damaged) == [recipe.kind]


def test_flags_name_where_the_artefact_is() -> None:
    scan = clean_scan(2)
    scan[100:130] = 0
    (flag,) = artefact_flags(scan)
    assert flag.name == "blink" and flag.reason == "rows 100-129 hold no signal"
    assert flag.to_dict() == {"name": "blink", "reason": "rows 100-129 hold no signal"}


def test_flags_do_not_depend_on_the_dtype_or_range_of_the_scan() -> None:
    damaged = simulate(clean_scan(0), "shifted columns", "moderate", seed=1)
    widened = damaged.astype(np.uint16) * 257 + 1000
    assert flag_names(damaged) == flag_names(widened) == flag_names(damaged.astype(np.float32) / 7) == ["motion"]


def test_a_featureless_scan_is_flagged_and_measured_as_nothing() -> None:
    blank = np.full((SIZE, SIZE), 17, dtype=np.uint8)
    assert flag_names(blank) == ["featureless"]
    assert inspect_scan(blank).measures == {}


def test_a_stack_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="stack of 2; check each slice on its own"):
        artefact_flags(np.stack([clean_scan(0), clean_scan(1)]))


def test_simulate_keeps_shape_and_dtype_and_refuses_unknown_names() -> None:
    scan = clean_scan(0)
    for strength in STRENGTHS:
        damaged = simulate(scan, "black band", strength, seed=0)
        assert damaged.shape == scan.shape and damaged.dtype == scan.dtype
    np.testing.assert_array_equal(simulate(scan, "shot noise", "mild", 4), simulate(scan, "shot noise", "mild", 4))
    with pytest.raises(ValueError, match="no artefact recipe 'smear'; choose one of shifted rows"):
        simulate(scan, "smear", "mild")
    with pytest.raises(ValueError, match="unknown strength 'huge'"):
        simulate(scan, "black band", "huge")


# Confidence with the bundled model: two small scans, segmented once.


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    path = bundled_checkpoint()
    assert path is not None, "the package must ship its default weights"
    return load_model(path)


@pytest.fixture(scope="module")
def clean_and_noisy(bundled: LoadedModel) -> dict[str, tuple[np.ndarray, Segmentation]]:
    clean = clean_scan(0)
    noisy = simulate(clean, "blur and noise", "moderate", seed=0)
    stack = np.stack([clean, noisy])
    maps = segment(bundled, stack, device="cpu", batch_size=2)
    return {"stack": (stack, maps), "clean": (clean, _slice(maps, 0)), "noisy": (noisy, _slice(maps, 1))}


def _slice(maps: Segmentation, index: int) -> Segmentation:
    return Segmentation(maps.pixel[index], maps.centerline[index], maps.fine[index], maps.device)


def test_a_blurred_noisy_scan_has_lower_confidence_than_the_clean_one(clean_and_noisy) -> None:
    (clean,) = assess(clean_and_noisy["clean"][1], clean_and_noisy["clean"][0])
    (noisy,) = assess(clean_and_noisy["noisy"][1], clean_and_noisy["noisy"][0])
    assert 0.0 <= noisy.confidence < clean.confidence - 0.03 <= 1.0
    assert clean.flags == () and [flag.name for flag in noisy.flags] == ["low_signal"]
    assert set(clean.features) == set(FEATURES)


def test_a_stack_gets_one_result_per_slice(clean_and_noisy) -> None:
    stack, maps = clean_and_noisy["stack"]
    qualities = assess(maps, stack)
    singles = [assess(clean_and_noisy[name][1], clean_and_noisy[name][0])[0] for name in ("clean", "noisy")]
    assert [q.confidence for q in qualities] == pytest.approx([q.confidence for q in singles])
    assert qualities[1].to_dict()["flags"][0]["name"] == "low_signal"
    assert qualities[1].flag_names() == "low_signal" and qualities[0].flag_names() == ""


def test_a_featureless_scan_gets_confidence_zero_and_a_flag(bundled: LoadedModel) -> None:
    blank = np.zeros((SIZE, SIZE), dtype=np.uint8)
    (quality,) = assess(segment(bundled, blank, device="cpu"), blank)
    assert quality.confidence == 0.0 and quality.flag_names() == "featureless"
    assert quality.to_dict() == {"confidence": 0.0, "flags": [quality.flags[0].to_dict()]}
    assert "one value everywhere" in quality.flags[0].reason
    assert predict_confidence({}, DEFAULT_CALIBRATION) == 0.0


def test_features_refuse_a_stack_or_maps_of_another_scan(clean_and_noisy) -> None:
    stack, maps = clean_and_noisy["stack"]
    with pytest.raises(ValueError, match="use slice_of"):
        scan_features(maps, stack)
    with pytest.raises(ValueError, match="not its maps"):
        scan_features(clean_and_noisy["clean"][1], clean_scan(0)[:200])


# Calibration: plain numbers that fit, predict within [0, 1] and travel as JSON.


def test_confidence_is_clipped_to_0_1() -> None:
    calibration = Calibration(("a",), (1.0,), 0.5)
    assert predict_confidence({"a": 3.0}, calibration) == 1.0
    assert predict_confidence({"a": -3.0}, calibration) == 0.0
    assert predict_confidence({"a": 0.25}, calibration) == pytest.approx(0.75)


def test_a_feature_beyond_the_fitted_range_may_lower_the_confidence_but_not_raise_it() -> None:
    calibration = Calibration(("good", "bad"), (0.5, -0.5), 0.5, ranges=((0.0, 0.4), (0.0, 0.4)))
    assert predict_confidence({"good": 0.9, "bad": 0.0}, calibration) == pytest.approx(0.7)
    assert predict_confidence({"good": 0.0, "bad": 0.9}, calibration) == pytest.approx(0.05)
    assert predict_confidence({"good": -0.5, "bad": -0.5}, calibration) == pytest.approx(0.25)


def test_a_missing_feature_is_named() -> None:
    with pytest.raises(ValueError, match="needs feature\\(s\\) map_agreement"):
        predict_confidence({"vessel_contrast": 0.4}, DEFAULT_CALIBRATION)


def test_fit_recovers_a_linear_relation_and_weights_count() -> None:
    rng = np.random.default_rng(0)
    features = [{"x": float(x), "y": float(y)} for x, y in rng.uniform(0, 1, (60, 2))]
    dices = [0.5 + 0.3 * f["x"] - 0.2 * f["y"] for f in features]
    calibration = fit_calibration(features, dices, ["x", "y"], ridge=0.0)
    assert calibration.coefficients == pytest.approx((0.3, -0.2)) and calibration.intercept == pytest.approx(0.5)
    assert calibration.ranges[0][0] == pytest.approx(min(f["x"] for f in features))
    # Two groups that disagree: the one given all the weight decides.
    pairs = [{"x": 0.0}, {"x": 1.0}] * 2
    weighted = fit_calibration(pairs, [0.2, 0.8, 0.8, 0.2], ["x"], weights=[1, 1, 0, 0], ridge=0.0)
    assert weighted.coefficients == pytest.approx((0.6,))
    with pytest.raises(ValueError, match="at least 2 scans"):
        fit_calibration([{}, {"x": 1.0}], [0.0, 1.0], ["x"])


def test_calibration_round_trips_through_json() -> None:
    text = json.dumps(DEFAULT_CALIBRATION.to_dict())
    assert Calibration.from_dict(json.loads(text)) == DEFAULT_CALIBRATION
    assert model_calibration({PROVENANCE_KEY: json.loads(text)}) == DEFAULT_CALIBRATION
    assert model_calibration({}) == DEFAULT_CALIBRATION
    with pytest.raises(ValueError, match="not a confidence calibration .*refit it or leave it out"):
        Calibration.from_dict({"features": ["a"], "coefficients": []})
    with pytest.raises(ValueError, match="one coefficient per feature"):
        Calibration.from_dict({"features": ["a"], "coefficients": [], "intercept": 0.5})


def test_the_default_calibration_uses_measured_features_only() -> None:
    assert set(DEFAULT_CALIBRATION.features) <= set(FEATURES)
    assert len(DEFAULT_CALIBRATION.ranges) == len(DEFAULT_CALIBRATION.features)
