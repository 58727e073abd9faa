"""The Segment vessels dock: outputs and their placement, re-thresholding, re-runs, cancel, errors.

Runs are synchronous (same generator, same callbacks, in the test's thread) except the cancel
test and the worker test, which use real threads. The network is the tiny one on small images.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Generator

import numpy as np
import pytest
import torch
from napari.layers import Image, Labels

from builders import write_image
from napari_octanet.core import checkpoint, inference
from napari_octanet.core.inference import Segmentation
from napari_octanet.core.network import OctaNet
from napari_octanet.core.registry import registry
from napari_octanet.core.scale import FIELDS_KEY, PROVENANCE_KEY
from napari_octanet.core.thresholds import DEFAULT_SPECK_SIZE, binarise
from napari_octanet.plugin._model_choice import CHECKPOINT_FILE, TrainedModel, model_trained
from napari_octanet.plugin._segment_job import model_cache
from napari_octanet.plugin._workers import Job, JobCallbacks
from napari_octanet.plugin.segment_widget import SegmentWidget
from tiny_models import TINY

UM_PER_PIXEL = 3000 / 304  # a 3 mm scan of 304 px, as the reader scales an OCTA-500 3M scan


@pytest.fixture(autouse=True)
def fresh_model_cache() -> Generator[None, None, None]:
    model_cache.clear()
    yield
    model_cache.clear()


@pytest.fixture
def no_models() -> Generator[None, None, None]:
    """No model registered (not even the bundled one) during the test; the registry as it was after."""
    kept = registry.entries()
    for entry in kept:
        registry.unregister(entry.name)
    yield
    for name in registry.names():
        registry.unregister(name)
    for entry in kept:
        registry.register(entry.path, entry.name, entry.description)


@pytest.fixture
def inference_calls(monkeypatch) -> list[dict]:
    """The options of each run of the core's inference generator (the network), still running the real one."""
    calls: list[dict] = []
    real = inference.iter_segment

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return (yield from real(*args, **kwargs))

    monkeypatch.setattr(inference, "iter_segment", counted)
    return calls


@pytest.fixture
def during_the_run(monkeypatch) -> list[Callable[[], None]]:
    """What the user does while a run goes on: each action is taken after the network's first step.

    For synchronous runs, in which the actions run in the test's thread between two steps, as a
    user's would between two progress updates; the real network runs before and after.
    """
    actions: list[Callable[[], None]] = []
    real = inference.iter_segment

    def interrupted(*args, **kwargs):
        steps = real(*args, **kwargs)
        yield next(steps)
        for action in actions:
            action()
        return (yield from steps)

    monkeypatch.setattr(inference, "iter_segment", interrupted)
    return actions


def dock(viewer, *, synchronous: bool = True) -> SegmentWidget:
    """The widget docked (as napari does it, so it is torn down with the viewer)."""
    widget = SegmentWidget(viewer, synchronous=synchronous)
    viewer.window.add_dock_widget(widget, name="Segment vessels")
    return widget


def run(widget: SegmentWidget) -> None:
    widget.controls.run_button.changed.emit(True)


def outputs(viewer) -> list:
    return [layer for layer in viewer.layers if "napari_octanet" in layer.metadata]


def scan(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    return rng.random(shape).astype(dtype)


def test_importing_the_widget_does_not_import_torch():
    code = "import sys, napari_octanet.plugin.segment_widget; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_2d_image_gives_probability_and_vessel_layers_in_place(make_napari_viewer, registered_tiny, shown):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 72)), name="scan", scale=(0.5, 0.25), translate=(3.0, 4.0))
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name

    run(widget)

    assert shown["error"] == []
    probability, vessels = viewer.layers["scan vessel probability"], viewer.layers["scan vessels"]
    assert isinstance(probability, Image) and isinstance(vessels, Labels)
    assert probability.data.shape == vessels.data.shape == (64, 72)
    assert probability.data.dtype == np.float32 and vessels.data.dtype == np.uint8
    for layer in (probability, vessels):
        np.testing.assert_allclose(layer.scale, (0.5, 0.25))
        np.testing.assert_allclose(layer.translate, (3.0, 4.0))
    assert "Done" in widget.controls.status.value and "cpu" in widget.controls.status.value
    assert re.search(r"Confidence [01]\.\d\d[;,]", widget.controls.status.value)  # the core's check, in the worker
    assert widget.queue.isHidden()  # one 2D scan: nothing to sort
    assert widget.controls.run_button.enabled and not widget.controls.cancel_button.enabled


def test_stack_is_segmented_slice_by_slice_in_batches(make_napari_viewer, registered_tiny, inference_calls, shown):
    viewer = make_napari_viewer()
    viewer.add_image(scan((3, 40, 48), np.uint16), name="stack", scale=(5.0, 1.0, 1.0))
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    widget.form["batch"].value = 2

    run(widget)

    assert shown["error"] == [] and len(inference_calls) == 1
    assert viewer.layers["stack vessel probability"].data.shape == (3, 40, 48)
    assert viewer.layers["stack vessels"].data.shape == (3, 40, 48)
    np.testing.assert_allclose(viewer.layers["stack vessels"].scale, (5.0, 1.0, 1.0))
    assert widget.controls.progress_bar.value == widget.controls.progress_bar.max == 3


@pytest.mark.parametrize(
    ("data", "rgb"),
    [(scan((64, 64, 3)), True), (scan((48, 64), np.float32), False), (scan((40, 48), np.float64) * 1e4, False)],
    ids=["rgb", "float32", "float64"],
)
def test_rgb_and_float_images(make_napari_viewer, registered_tiny, shown, data, rgb):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="scan", rgb=rgb)
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name

    run(widget)

    assert shown["error"] == []
    assert viewer.layers["scan vessels"].data.shape == data.shape[:2]


def test_rotations_and_flips_box_averages_the_eight_views(make_napari_viewer, registered_tiny, inference_calls):
    viewer = make_napari_viewer()
    image = scan((64, 64))
    viewer.add_image(image, name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    widget.form["device"].value = "cpu"  # float16 on a GPU would not match the CPU reference at 1e-5
    widget.form["tta"].value = True

    run(widget)

    assert inference_calls[-1]["tta"] is True
    expected = inference.segment(checkpoint.load_model(registered_tiny.path), image, device="cpu", tta=True).fine
    np.testing.assert_allclose(viewer.layers["scan vessel probability"].data, expected, atol=1e-5)


def test_threshold_changes_rebinarise_without_running_the_network(make_napari_viewer, registered_tiny, inference_calls):
    viewer = make_napari_viewer()
    viewer.add_image(scan((2, 64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    run(widget)
    probability = viewer.layers["scan vessel probability"].data
    assert not widget.form["level"].enabled

    widget.form["specks"].value = 0
    widget.form["threshold"].value = "manual"
    widget.form["level"].value = 0.3
    np.testing.assert_array_equal(viewer.layers["scan vessels"].data, probability > 0.3)
    widget.form["threshold"].value = "otsu"
    np.testing.assert_array_equal(viewer.layers["scan vessels"].data, binarise(probability, "otsu"))

    assert widget.form["level"].enabled is False
    assert len(inference_calls) == 1


def test_the_vessel_mask_leaves_out_specks_until_told_to_keep_them(make_napari_viewer, registered_tiny, monkeypatch):
    vessel_map = np.full((64, 64), 0.1, np.float32)
    vessel_map[30:33, 4:60] = 0.9  # a vessel of 168 pixels
    vessel_map[5, 5] = vessel_map[6, 6] = vessel_map[50, 40:43] = 0.9  # specks of 2 and 3 pixels

    def designed_maps(*args, **kwargs):
        yield from ()
        return Segmentation(pixel=vessel_map, centerline=vessel_map, fine=vessel_map, device="cpu")

    monkeypatch.setattr(inference, "iter_segment", designed_maps)
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    assert widget.form["specks"].value == DEFAULT_SPECK_SIZE
    run(widget)
    vessel = np.zeros((64, 64), bool)
    vessel[30:33, 4:60] = True
    np.testing.assert_array_equal(viewer.layers["scan vessels"].data, vessel)

    widget.form["specks"].value = 0
    np.testing.assert_array_equal(viewer.layers["scan vessels"].data, vessel_map > 0.5)
    widget.form["specks"].value = 2
    assert viewer.layers["scan vessels"].data.sum() == vessel.sum() + 3


def test_a_second_run_updates_the_same_layers_and_reuses_the_model(
    make_napari_viewer, registered_tiny, monkeypatch, shown
):
    loads: list[object] = []
    real_load = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    run(widget)
    first = list(viewer.layers)
    viewer.layers["scan vessels"].name = "renamed by the user"

    run(widget)

    assert shown["error"] == []
    assert list(viewer.layers) == first
    assert len(loads) == 1


def test_coarse_maps_on_request(make_napari_viewer, registered_tiny):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    run(widget)
    assert len(outputs(viewer)) == 2

    widget.form["coarse"].value = True

    assert viewer.layers["scan coarse vessel probability"].data.shape == (64, 64)
    assert viewer.layers["scan coarse centerline probability"].data.dtype == np.float32
    assert len(outputs(viewer)) == 4


def test_cancel_in_a_threaded_run_writes_nothing(make_napari_viewer, registered_tiny, monkeypatch, qtbot):
    """The inference is held after its first step until the test has pressed Cancel."""
    first_step, release = threading.Event(), threading.Event()
    real = inference.iter_segment

    def held(*args, **kwargs):
        steps = real(*args, **kwargs)
        yield next(steps)
        first_step.set()
        release.wait(10)
        return (yield from steps)

    monkeypatch.setattr(inference, "iter_segment", held)
    viewer = make_napari_viewer()
    viewer.add_image(scan((4, 64, 64)), name="stack")
    widget = dock(viewer, synchronous=False)
    qtbot.waitUntil(lambda: "Available here" in widget.form["device_info"].value, timeout=20000)
    widget.form["model"].value = registered_tiny.name

    run(widget)
    qtbot.waitUntil(first_step.is_set, timeout=20000)
    assert not widget.controls.run_button.enabled
    widget.controls.cancel_button.changed.emit(True)
    release.set()
    qtbot.waitUntil(lambda: widget.controls.run_button.enabled, timeout=20000)

    assert outputs(viewer) == []
    assert "Cancelled" in widget.controls.status.value
    assert not widget.controls.cancel_button.enabled


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (scan((2, 2, 64, 64)), "shape (2, 2, 64, 64)"),
        (scan((16, 16)), "too small"),
        (np.where(np.eye(64, dtype=bool), np.nan, 1.0).astype(np.float32), "NaN"),
    ],
    ids=["4d", "too-small", "nan"],
)
def test_unusable_images_are_refused_with_a_notification(make_napari_viewer, registered_tiny, shown, data, expected):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="bad")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name

    run(widget)

    assert len(shown["error"]) == 1 and expected in shown["error"][0]
    assert "Traceback" not in shown["error"][0]
    assert outputs(viewer) == []
    assert widget.controls.run_button.enabled and "Segmentation failed" in widget.controls.status.value


def test_labels_layers_are_not_offered(make_napari_viewer, registered_tiny, shown):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((64, 64), dtype=np.uint8), name="mask")
    widget = dock(viewer)

    assert widget.form["image"].choices == ()
    run(widget)
    assert len(shown["error"]) == 1 and "No image layer" in shown["error"][0]


def test_corrupt_checkpoint_is_named_in_the_error(make_napari_viewer, tmp_path, shown):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.select_model(broken)

    run(widget)

    assert len(shown["error"]) == 1 and str(broken) in shown["error"][0] and "corrupt" in shown["error"][0]
    assert outputs(viewer) == []


def test_without_any_model_segment_asks_for_a_checkpoint(make_napari_viewer, no_models, shown):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    assert not widget.form["checkpoint"].native.isHidden()

    run(widget)

    assert len(shown["error"]) == 1
    assert "pick a trained OCTA-Net checkpoint" in shown["error"][0] and "train one" in shown["error"][0]
    assert outputs(viewer) == []


def test_a_model_registered_later_is_offered_and_chosen(make_napari_viewer, no_models, tiny_checkpoint):
    viewer = make_napari_viewer()
    widget = dock(viewer)

    registry.register(tiny_checkpoint, name="just-trained")

    assert "just-trained" in widget.form["model"].choices
    assert widget.form["model"].value == "just-trained"
    assert widget.form["checkpoint"].native.isHidden()


def test_out_of_memory_notes_become_warnings(make_napari_viewer, registered_tiny, monkeypatch, shown):
    note = "out of GPU memory: retrying with batches of 1 slice(s)"
    real = inference.iter_segment

    def noted(*args, **kwargs):
        segmentation = yield from real(*args, **kwargs)
        segmentation.notes.append(note)
        return segmentation

    monkeypatch.setattr(inference, "iter_segment", noted)
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name

    run(widget)

    assert shown["warning"] == [f"Segmentation of 'scan': {note}"]
    assert note in widget.controls.status.value


def test_devices_offered_are_this_machines(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = dock(viewer)
    from napari_octanet.core.devices import available_devices

    assert widget.form["device"].choices == ("auto", *available_devices())
    assert widget.form["device"].value == "auto"
    assert "auto →" in widget.form["device_info"].value


def test_a_runtime_error_in_a_threaded_job_reaches_on_error(qtbot):
    """superqt alone would drop it: a RuntimeError is what torch raises, so it must reach the user."""
    received: list[Exception] = []
    finished = threading.Event()

    def failing() -> Generator[int, None, None]:
        yield 1
        raise RuntimeError("CUDA error: device-side assert triggered")

    callbacks: JobCallbacks[int, None] = JobCallbacks(
        on_result=lambda _: None, on_error=received.append, on_finished=finished.set
    )
    Job(failing(), callbacks, synchronous=False).start()
    qtbot.waitUntil(finished.is_set, timeout=10000)

    assert [str(error) for error in received] == ["CUDA error: device-side assert triggered"]


def segmented(make_napari_viewer, registered_tiny, data: np.ndarray | None = None):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)) if data is None else data, name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    run(widget)
    return viewer, widget


def test_the_result_shows_over_the_scan(make_napari_viewer, registered_tiny):
    viewer, _ = segmented(make_napari_viewer, registered_tiny)
    names = [layer.name for layer in viewer.layers]
    vessels, probability = viewer.layers["scan vessels"], viewer.layers["scan vessel probability"]

    assert not probability.visible
    assert 0 < vessels.opacity < 1 and names.index("scan vessels") == len(names) - 1


def test_a_painted_stroke_survives_threshold_changes_and_re_runs(make_napari_viewer, registered_tiny, shown):
    viewer, widget = segmented(make_napari_viewer, registered_tiny)
    painted = viewer.layers["scan vessels"]
    painted.paint((5, 5), 7, refresh=True)  # what a brush stroke commits
    stroke = painted.data.copy()

    widget.form["threshold"].value = "manual"
    widget.form["level"].value = 0.9
    run(widget)

    np.testing.assert_array_equal(painted.data, stroke)
    assert painted.name == "scan corrections" and painted.data[5, 5] == 7
    fresh = viewer.layers["scan vessels"]
    assert fresh is not painted and fresh.data[5, 5] != 7
    assert any("corrections" in message for message in shown["info"])


def test_correct_this_result_makes_an_editable_copy_that_runs_leave_alone(make_napari_viewer, registered_tiny, shown):
    viewer, widget = segmented(make_napari_viewer, registered_tiny)
    mask = viewer.layers["scan vessels"].data.copy()

    widget.form["correct"].changed.emit(True)
    corrections = viewer.layers["scan corrections"]
    np.testing.assert_array_equal(corrections.data, mask)
    assert viewer.layers.selection.active is corrections and corrections.mode == "paint"
    corrections.data[0, 0] = 3
    widget.form["threshold"].value = "manual"
    widget.form["level"].value = 0.99
    run(widget)
    widget.form["correct"].changed.emit(True)  # a second press selects it again, never replaces it

    assert viewer.layers["scan corrections"] is corrections and corrections.data[0, 0] == 3
    assert [layer.name for layer in viewer.layers].count("scan corrections") == 1


def test_correct_before_any_result_says_to_segment_first(make_napari_viewer, shown):
    viewer = make_napari_viewer()
    widget = dock(viewer)
    widget.form["correct"].changed.emit(True)
    assert shown["error"] and "Segment" in shown["error"][0]


def test_the_otsu_level_used_is_shown(make_napari_viewer, registered_tiny):
    viewer, widget = segmented(make_napari_viewer, registered_tiny)
    from napari_octanet.core.thresholds import otsu_level

    level = otsu_level(viewer.layers["scan vessel probability"].data)
    assert not widget.form["otsu_info"].native.isHidden()
    assert f"{level:.3f}" in widget.form["otsu_info"].value


def test_a_constant_scan_gives_an_empty_mask_and_a_warning(make_napari_viewer, registered_tiny, shown):
    viewer, _ = segmented(make_napari_viewer, registered_tiny, np.full((64, 64), 120, np.uint8))

    assert not viewer.layers["scan vessels"].data.any()
    assert shown["warning"] and "'scan'" in shown["warning"][0]


@pytest.mark.parametrize("shape", [(64, 72), (2, 64, 64)], ids=["image", "stack"])
def test_save_results_writes_as_octanet_segment_does_and_asks_before_replacing(
    make_napari_viewer, registered_tiny, monkeypatch, tmp_path, shape
):
    """The core's writer and record, as a batch writes them: the mask, the probability and how they were made."""
    import json

    import tifffile
    from qtpy.QtWidgets import QFileDialog, QMessageBox
    from skimage.io import imread

    viewer = make_napari_viewer()
    viewer.add_image(scan(shape), name="scan", scale=(1.0,) * (len(shape) - 2) + (UM_PER_PIXEL, UM_PER_PIXEL))
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    widget.form["specks"].value = 3
    run(widget)
    out = tmp_path / "results"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_: str(out))
    answers: list[str] = []

    def answer(*_):
        answers.append("asked")
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer)

    widget.form["save"].changed.emit(True)

    mask_name = "scan_vessels.png" if len(shape) == 2 else "scan_vessels.tif"
    mask = imread(out / mask_name) if len(shape) == 2 else tifffile.imread(out / mask_name)
    probability = tifffile.imread(out / "scan_probability.tif")
    np.testing.assert_array_equal(mask, viewer.layers["scan vessels"].data * 255)
    assert probability.dtype == np.float32 and probability.shape == shape
    np.testing.assert_array_equal(probability, viewer.layers["scan vessel probability"].data)
    record = json.loads((out / "scan_segment.json").read_text())
    assert record["pixel_size_um"] == pytest.approx(UM_PER_PIXEL) and record["speck_size"] == 3
    assert record["threshold"] == "otsu" and record["model"] == str(registered_tiny.path.resolve())
    scans = [record] if len(shape) == 2 else record["slices"]  # a stack's confidence and flags per slice
    assert len(scans) == (shape[0] if len(shape) > 2 else 1)
    assert all(0 <= scan["confidence"] <= 1 and isinstance(scan["flags"], list) for scan in scans)
    assert answers == [] and "scan_segment.json" in widget.controls.status.value

    (out / mask_name).write_bytes(b"kept")
    widget.form["save"].changed.emit(True)  # declined: nothing replaced
    assert answers == ["asked"] and (out / mask_name).read_bytes() == b"kept"


def test_save_results_records_the_file_the_scan_was_read_from(make_napari_viewer, registered_tiny, tmp_path):
    import json

    path = write_image(tmp_path / "OCTA500_6M" / "10001.png", scan((64, 64)))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-octanet")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    run(widget)

    widget.save_results(tmp_path)

    record = json.loads((tmp_path / "10001_segment.json").read_text())
    assert record["source"] == str(path.resolve()) and record["pixel_size_um"] == pytest.approx(6000 / 64)


def test_failures_in_the_cores_words_or_reported_as_a_bug():
    from napari_octanet.core.devices import DeviceError
    from napari_octanet.plugin._workers import describe_failure

    assert describe_failure("Segmentation", DeviceError("no CUDA")) == "Segmentation failed: no CUDA"
    raw = describe_failure("Segmentation", RuntimeError("CUDA error: device-side assert triggered"))
    assert "unexpectedly" in raw and "please report it" in raw


def close(viewer, widget: SegmentWidget) -> None:
    """What napari's close button (X) does: the widget is taken out of its dock, not deleted."""
    viewer.window.remove_dock_widget(widget.native)


def fine_tuned(name: str, image: str = "scan") -> None:
    """What the Fine-tune dock announces once it has saved and registered a model trained on ``image``."""
    model_trained.emit(TrainedModel(name, image))


def test_a_closed_dock_no_longer_segments_after_a_fine_tune(make_napari_viewer, registered_tiny, inference_calls):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    closed = dock(viewer)
    close(viewer, closed)
    reopened = dock(viewer)

    fine_tuned(registered_tiny.name)

    assert len(inference_calls) == 1
    assert "Done" in reopened.controls.status.value and closed.controls.status.value == ""


def test_a_dock_docked_again_follows_new_models_again(make_napari_viewer, registered_tiny, tiny_checkpoint):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    close(viewer, widget)
    registry.register(tiny_checkpoint, name="trained-while-closed")

    viewer.window.add_dock_widget(widget, name="Segment vessels")
    assert "trained-while-closed" in widget.form["model"].choices
    fine_tuned("trained-while-closed")

    assert "Done" in widget.controls.status.value and "trained-while-closed" in widget.controls.status.value


def test_closing_the_dock_cancels_its_run(make_napari_viewer, registered_tiny, during_the_run):
    viewer = make_napari_viewer()
    viewer.add_image(scan((3, 64, 64)), name="stack")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    widget.form["batch"].value = 1
    during_the_run.append(lambda: close(viewer, widget))

    run(widget)

    assert outputs(viewer) == []
    assert "Cancelled" in widget.controls.status.value


def test_the_result_for_an_image_removed_during_the_run_is_discarded(
    make_napari_viewer, registered_tiny, during_the_run, shown
):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    during_the_run.append(lambda: viewer.layers.remove("scan"))

    run(widget)
    widget.form["threshold"].value = "manual"

    assert list(viewer.layers) == []
    assert widget.controls.status.value == "'scan' was removed; its result was discarded."
    assert shown["error"] == []


def test_threshold_changes_leave_the_layers_of_a_removed_image_alone(make_napari_viewer, registered_tiny):
    viewer, widget = segmented(make_napari_viewer, registered_tiny)
    viewer.layers.clear()  # the scan and its result

    widget.form["threshold"].value = "manual"
    widget.form["specks"].value = 0

    assert list(viewer.layers) == []
    assert widget.form["otsu_info"].native.isHidden()


@pytest.mark.parametrize("problem", ["missing checkpoint", "model no longer registered"])
def test_a_form_error_replaces_the_last_runs_status(make_napari_viewer, registered_tiny, tmp_path, shown, problem):
    _, widget = segmented(make_napari_viewer, registered_tiny)
    assert "Done" in widget.controls.status.value
    if problem == "missing checkpoint":
        widget.select_model(tmp_path / "gone.safetensors")
    else:
        registry.unregister(registered_tiny.name)

    run(widget)

    assert len(shown["error"]) == 1
    assert widget.controls.status.value == f"Not started: {shown['error'][0]}"


def test_the_status_names_the_model_also_after_a_fine_tune(
    make_napari_viewer, registered_tiny, tiny_checkpoint, tmp_path
):
    _, widget = segmented(make_napari_viewer, registered_tiny)
    assert f"with {registered_tiny.name} on " in widget.controls.status.value

    registry.register(tiny_checkpoint, name="tuned-here")
    fine_tuned("tuned-here")
    assert "Done" in widget.controls.status.value and "with tuned-here on" in widget.controls.status.value

    own_file = shutil.copy(tiny_checkpoint, tmp_path / "my checkpoint.safetensors")
    widget.select_model(own_file)
    run(widget)
    assert "with my checkpoint.safetensors on" in widget.controls.status.value


@pytest.mark.parametrize("when", ["docked", "closed"])
def test_a_new_model_is_listed_among_the_registered_ones_and_the_choice_kept(
    make_napari_viewer, registered_tiny, tiny_checkpoint, when
):
    """Not after 'checkpoint file…', where magicgui put it, whether registered while the dock is open or closed."""
    viewer = make_napari_viewer()
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    if when == "closed":
        close(viewer, widget)

    registry.register(tiny_checkpoint, name="new")
    if when == "closed":
        viewer.window.add_dock_widget(widget, name="Segment vessels")

    assert widget.form["model"].choices == (*registry.names(), CHECKPOINT_FILE)
    assert widget.form["model"].value == registered_tiny.name


def test_a_layer_scale_in_um_is_the_pixel_size_given_and_the_status_says_so(
    make_napari_viewer, registered_tiny, inference_calls, shown
):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan", scale=(UM_PER_PIXEL, UM_PER_PIXEL))
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    widget.form["pixel_size"].value = 20.0  # the field is for layers whose scale states no pixel size

    run(widget)

    assert shown["error"] == []
    assert inference_calls[-1]["pixel_size_um"] == pytest.approx(UM_PER_PIXEL)
    for name in ("scan vessels", "scan vessel probability"):
        np.testing.assert_allclose(viewer.layers[name].scale, (UM_PER_PIXEL, UM_PER_PIXEL))
    assert "9.87 µm per pixel (from the layer's scale)" in widget.controls.status.value
    assert "This layer's scale gives 9.87 µm per pixel" in widget.form["pixel_size_note"].value


@pytest.mark.parametrize("scale", [1.0, 0.00987], ids=["unset", "mm"])
def test_without_a_scale_in_um_the_pixel_size_field_gives_it(
    make_napari_viewer, registered_tiny, inference_calls, shown, scale
):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan", scale=(scale, scale))
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name
    widget.form["pixel_size"].value = 12.5

    run(widget)

    assert shown["error"] == [] and inference_calls[-1]["pixel_size_um"] == pytest.approx(12.5)
    assert "12.5 µm per pixel (from the pixel-size field)" in widget.controls.status.value
    np.testing.assert_allclose(viewer.layers["scan vessels"].scale, (scale, scale))  # over the scan, as it is
    note = widget.form["pixel_size_note"]
    assert ("looks like mm per pixel" in note.value) == (scale != 1.0) and note.native.isHidden() == (scale == 1.0)


def test_with_no_pixel_size_known_the_scan_is_segmented_as_it_is_and_the_status_says_so(
    make_napari_viewer, registered_tiny, inference_calls
):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    widget = dock(viewer)
    widget.form["model"].value = registered_tiny.name

    run(widget)

    assert widget.form["pixel_size"].native.text() == "unknown"
    assert inference_calls[-1]["pixel_size_um"] is None
    assert "pixel size unknown" in widget.controls.status.value


def test_a_resampled_scan_is_noted_in_the_status(make_napari_viewer, tmp_path, shown):
    """A model trained at 10 µm per pixel gets a 5 µm scan resampled, and the user is told."""
    torch.manual_seed(0)
    model = checkpoint.save_checkpoint(
        tmp_path / "ten-um.safetensors",
        OctaNet(TINY),
        provenance={PROVENANCE_KEY: {"OCTA500_3M": 10.0}, FIELDS_KEY: {"OCTA500_3M": 3.0}},
    )
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan", scale=(5.0, 5.0))
    widget = dock(viewer)
    widget.select_model(model)

    run(widget)

    assert viewer.layers["scan vessels"].data.shape == (64, 64)
    status = widget.controls.status.value
    assert "5 µm per pixel (from the layer's scale)" in status and "was resampled to 10 µm per pixel" in status
