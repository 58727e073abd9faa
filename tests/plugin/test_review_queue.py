"""The Segment dock's review queue and its status line: each slice's (or layer's) confidence and flags, sorted
flagged first, then least confident first; a click goes there, and *Correct this result* and Fine-tune follow.

Most tests give the core's quality check chosen confidences (``chosen_qualities``), so that the order is
known; one runs the real check on synthetic scans with a simulated saccade. The network is the tiny one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from qtpy.QtCore import Qt
from scipy.ndimage import gaussian_filter

from napari_octanet.core import quality
from napari_octanet.core.quality import Flag, ScanQuality
from napari_octanet.core.quality.simulate import simulate
from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.plugin.segment_widget import SegmentWidget
from napari_octanet.plugin.train_widget import TrainWidget

MOTION = Flag("motion", "rows 40 and 41 are displaced by 6 px")
LOW_SIGNAL = Flag("low_signal", "fine detail is uncorrelated (0.01): noise drowns the vessels")


def judged(confidence: float, *flags: Flag) -> ScanQuality:
    return ScanQuality(confidence, flags)


@pytest.fixture
def chosen_qualities(monkeypatch) -> Callable[..., None]:
    """Give each run's slices these qualities (one list per run, in the order of the runs) instead of the core's
    check; the network still runs."""
    runs: list[list[ScanQuality]] = []

    def designed(segmentation, image, calibration):
        return runs.pop(0)

    monkeypatch.setattr(quality, "assess", designed)
    return lambda *qualities: runs.append(list(qualities))


def scan(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def segmenting(viewer, model: str) -> SegmentWidget:
    widget = SegmentWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(widget, name="Segment vessels")
    widget.form["model"].value = model
    return widget


def segment(viewer, widget: SegmentWidget, layer_name: str) -> None:
    """Choose the image layer and press Segment."""
    widget.form["image"].value = viewer.layers[layer_name]
    widget.controls.run_button.changed.emit(True)


def click(widget: SegmentWidget, text: str) -> None:
    """A real mouse click on the queue's row that reads ``text``."""
    from pytestqt.qtbot import QtBot

    rows = widget.queue.list
    item = rows.item(widget.queue.texts().index(text))
    rows.scrollToItem(item)
    QtBot.mouseClick(rows.viewport(), Qt.MouseButton.LeftButton, pos=rows.visualItemRect(item).center())


@pytest.fixture
def stack_viewer(make_napari_viewer, registered_tiny, chosen_qualities):
    """A 4-slice stack (5 units apart, starting at 10) segmented, its slices judged 0.91, 0.85 with motion, 0.80
    and 0.88 with low signal."""
    viewer = make_napari_viewer()
    viewer.add_image(scan((4, 64, 64)), name="stack", scale=(5.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    chosen_qualities(judged(0.91), judged(0.85, MOTION), judged(0.80), judged(0.88, LOW_SIGNAL))
    widget = segmenting(viewer, registered_tiny.name)
    segment(viewer, widget, "stack")
    return viewer, widget


def test_a_stacks_slices_are_queued_flagged_first_then_least_confident_first(stack_viewer, shown):
    viewer, widget = stack_viewer

    assert shown["error"] == []
    assert widget.queue.texts() == [
        "slice 1 · 0.85 · motion",
        "slice 3 · 0.88 · low signal",
        "slice 2 · 0.80",
        "slice 0 · 0.91",
    ]
    assert not widget.queue.isHidden()
    assert MOTION.reason in widget.queue.list.item(0).toolTip()
    status = widget.controls.status.value
    assert "Confidence 0.80 to 0.91 over 4 slices (lowest: slice 2)" in status
    assert "flagged: slice 1 (motion), slice 3 (low signal)" in status


def test_a_click_on_an_entry_moves_the_viewer_to_its_slice(stack_viewer):
    viewer, widget = stack_viewer

    click(widget, "slice 3 · 0.88 · low signal")
    assert viewer.dims.point[0] == pytest.approx(10.0 + 3 * 5.0)
    assert viewer.dims.current_step[0] == 3

    click(widget, "slice 2 · 0.80")
    assert viewer.dims.current_step[0] == 2


def test_the_queue_stays_a_few_rows_high_and_scrolls(make_napari_viewer, registered_tiny, chosen_qualities):
    viewer = make_napari_viewer()
    viewer.add_image(scan((12, 48, 48)), name="long stack")
    chosen_qualities(*(judged(0.5 + index / 100) for index in range(12)))
    widget = segmenting(viewer, registered_tiny.name)
    segment(viewer, widget, "long stack")

    rows = widget.queue.list
    assert rows.count() == 12
    assert rows.height() < 7 * rows.sizeHintForRow(0)


def test_the_status_line_shows_a_scans_confidence_and_its_flags_with_their_reasons(
    make_napari_viewer, registered_tiny, chosen_qualities
):
    viewer = make_napari_viewer()
    viewer.add_image(scan((64, 64)), name="scan")
    chosen_qualities(judged(0.87, MOTION))
    widget = segmenting(viewer, registered_tiny.name)

    segment(viewer, widget, "scan")

    status = widget.controls.status.value
    assert "Done" in status and "Confidence 0.87; flagged motion: rows 40 and 41 are displaced by 6 px." in status
    assert widget.queue.isHidden(), "a single 2D scan: the status line says it all"


def test_correct_this_result_copies_the_slice_chosen_in_the_queue_and_fine_tune_trains_on_those_slices(
    stack_viewer, tmp_path, shown
):
    viewer, widget = stack_viewer
    mask = viewer.layers["stack vessels"].data.copy()
    assert mask[1].any() and mask[2].any()

    click(widget, "slice 1 · 0.85 · motion")
    widget.form["correct"].changed.emit(True)
    corrections = viewer.layers["stack corrections"]
    np.testing.assert_array_equal(corrections.data[1], mask[1])
    assert not corrections.data[[0, 2, 3]].any(), "the slices nobody chose to correct stay empty"
    assert viewer.layers.selection.active is corrections and corrections.mode == "paint"
    corrections.paint((1, 5, 5), 1, refresh=True)  # the user's correction on the slice shown

    click(widget, "slice 2 · 0.80")
    widget.form["correct"].changed.emit(True)  # adds slice 2, keeps slice 1 as painted
    np.testing.assert_array_equal(corrections.data[2], mask[2])
    assert corrections.data[1, 5, 5] == 1 and not corrections.data[[0, 3]].any()
    assert [layer.name for layer in viewer.layers].count("stack corrections") == 1
    assert any("2 so far" in message for message in shown["info"])

    tune = TrainWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(tune, name="Fine-tune")
    tune.form["model"].value = widget.form["model"].value
    tune.form["name"].value = "from the queue"
    assert tune.form.pairs.rows[0].label.value is corrections
    assert [piece.name for piece in tune.form.read().request.data.slices] == ["stack slice 1", "stack slice 2"]


def test_several_layers_are_queued_by_name_and_a_click_shows_one_and_corrects_it(
    make_napari_viewer, registered_tiny, chosen_qualities, shown
):
    viewer = make_napari_viewer()
    for seed, name in enumerate(("a", "b")):
        viewer.add_image(scan((64, 64), seed), name=name)
    chosen_qualities(judged(0.90))
    chosen_qualities(judged(0.86))
    widget = segmenting(viewer, registered_tiny.name)
    segment(viewer, widget, "a")
    assert widget.queue.isHidden()
    segment(viewer, widget, "b")
    assert widget.queue.texts() == ["b · 0.86", "a · 0.90"] and not widget.queue.isHidden()

    click(widget, "a · 0.90")

    visible = {layer.name for layer in viewer.layers if layer.visible}
    assert visible == {"a", "a vessels"}
    assert viewer.layers.selection.active is viewer.layers["a"] and widget.form["image"].value is viewer.layers["a"]
    widget.form["correct"].changed.emit(True)  # for 'a', although 'b' was segmented last
    np.testing.assert_array_equal(viewer.layers["a corrections"].data, viewer.layers["a vessels"].data)
    assert "b corrections" not in viewer.layers

    viewer.layers.remove("b")
    assert widget.queue.texts() == ["a · 0.90"] and widget.queue.isHidden()


def smoothed_scan(seed: int, size: int = 96) -> np.ndarray:
    """A synthetic scan whose speckle spans a pixel or so, as a device's does (core.synthetic's is white noise,
    which the checks rightly call low signal)."""
    image, _ = synthetic_octa(size, seed)
    return np.round(gaussian_filter(image.astype(np.float64), 0.6)).astype(np.uint8)


def test_the_real_check_runs_in_the_worker_and_puts_a_saccade_first(
    make_napari_viewer, registered_tiny, monkeypatch, qtbot
):
    threads: list[threading.Thread] = []
    real = quality.assess
    monkeypatch.setattr(quality, "assess", lambda *args: threads.append(threading.current_thread()) or real(*args))
    slices = [smoothed_scan(seed) for seed in range(3)]
    slices[2] = simulate(slices[2], "shifted rows", "severe", seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(np.stack(slices), name="stack")
    widget = SegmentWidget(viewer, synchronous=False)
    viewer.window.add_dock_widget(widget, name="Segment vessels")
    widget.form["model"].value = registered_tiny.name

    widget.controls.run_button.changed.emit(True)
    qtbot.waitUntil(lambda: "Done" in widget.controls.status.value, timeout=60000)

    assert threads and threads[0] is not threading.main_thread()
    first, *rest = widget.queue.texts()
    assert first.startswith("slice 2 · ") and first.endswith(" · motion")
    assert all("motion" not in text for text in rest)
