"""The Fine-tune dock: form checks, a synchronous run, Stop in a threaded run, registry hand-over.

Training uses the tiny network on 64 x 64 synthetic images for one or two epochs per stage.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from napari_octanet.core import inference
from napari_octanet.core.checkpoint import load_checkpoint
from napari_octanet.core.library import ENV_VAR
from napari_octanet.core.registry import registry
from napari_octanet.core.synthetic import synthetic_set
from napari_octanet.core.training.layers import ImagePair, NamedArray, labelled_slices
from napari_octanet.core.training.settings import (
    FINE_TUNE_AUGMENT,
    FINE_TUNE_BATCH_SIZE,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LR,
    MIN_BATCH_SIZE,
    recorded_settings,
)
from napari_octanet.plugin import train_widget as train_module
from napari_octanet.plugin._layers import find_corrections
from napari_octanet.plugin._model_choice import CHECKPOINT_FILE
from napari_octanet.plugin._train_job import TrainRequest, progress_of, samples_per_epoch, train_job
from napari_octanet.plugin.segment_widget import SegmentWidget
from napari_octanet.plugin.train_widget import SCRATCH, WORK_FOLDER, TrainWidget

START = "tiny-start"


@pytest.fixture
def tiny_start(tiny_checkpoint):
    """The tiny checkpoint registered as START; every name registered during the test is forgotten after."""
    before = set(registry.names())
    registry.register(tiny_checkpoint, START)
    yield tiny_checkpoint
    for name in set(registry.names()) - before:
        registry.unregister(name)


@pytest.fixture
def stack():
    """Three 64 x 64 synthetic images with their labels, as a stack."""
    pairs = synthetic_set(3, size=64, seed=1)
    return np.stack([image for image, _ in pairs]), np.stack([label for _, label in pairs]).astype(np.uint8)


@pytest.fixture
def scan_viewer(make_napari_viewer, stack):
    """A viewer holding the stack as "scan" and its labels as "scan labels"."""
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="scan")
    viewer.add_labels(stack[1], name="scan labels")
    return viewer


def dock(viewer, tmp_path, *, name="tuned", synchronous=True, epochs=1, start=START) -> TrainWidget:
    widget = TrainWidget(viewer, synchronous=synchronous)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    widget.form["model"].value = start
    widget.form["epochs"].value = epochs
    widget.form["fine_epochs"].value = 1
    widget.form["batch"].value = 2
    widget.form["name"].value = name
    return widget


def segmenting(viewer) -> SegmentWidget:
    """The Segment vessels dock, docked, after segmenting the viewer's first image with START."""
    widget = SegmentWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(widget, name="Segment vessels")
    widget.select_model(START)
    widget.segment()
    return widget


def paint(layer) -> None:
    """What a brush stroke commits."""
    layer.paint((5, 5), 1, refresh=True)


def test_building_the_dock_and_picking_a_checkpoint_file_does_not_import_torch(tiny_checkpoint):
    """Opening the dock must stay quick: torch takes seconds to import, so it waits for a run."""
    code = f"""
import sys
import weakref
import napari
from napari_octanet.plugin._model_choice import CHECKPOINT_FILE
from napari_octanet.plugin.train_widget import TrainWidget
widget = TrainWidget(napari.Viewer(show=False))
widget.form["model"].value = CHECKPOINT_FILE
widget.form["checkpoint"].value = {str(tiny_checkpoint)!r}
assert not widget.form["augment"].value, "fine-tuning starts without augmentation"
sys.exit("torch was imported" if "torch" in sys.modules else 0)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_synchronous_run_registers_a_model_the_segment_dock_offers(
    tmp_path, tiny_start, shown, scan_viewer, model_library
):
    viewer = scan_viewer
    segment = SegmentWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(segment, name="Segment vessels")
    widget = dock(viewer, tmp_path)
    assert widget.form.pairs.rows[0].label.value is viewer.layers["scan labels"]

    widget.controls.run_button.changed.emit(True)

    best = model_library / "tuned.safetensors"
    assert shown["error"] == []
    assert [p.name for p in model_library.rglob("*.safetensors")] == [best.name]  # no resume state left
    loaded, _ = load_checkpoint(best)
    assert loaded.info.network.name == "tiny"
    provenance = loaded.info.provenance
    assert provenance["trained_with"] == "napari-octanet Fine-tune dock"
    assert provenance["source_layers"] == ["scan / scan labels"] and provenance["starting_model"] == START
    assert provenance["epochs"] == {"scs": 1, "srs": 1} and provenance["best_validation"]["val_dice"] is not None
    with safe_open(str(best), framework="pt") as handle:
        assert {handle.get_slice(key).get_dtype() for key in handle.keys()} <= {"F16", "I64"}  # noqa: SIM118
    assert len(loaded.info.provenance["validation_images"]) == 1  # 3 slices, 20 % held out
    assert registry.resolve("tuned") == best.resolve()
    assert "tuned" in segment.form["model"].choices
    assert "tuned" in widget.form["model"].choices  # and a starting point for the next run
    assert [(p.stage, p.epoch) for p in widget.curve.points] == [(1, 1), (2, 1)]
    assert widget.curve.points[0].val_dice is not None
    assert not widget.curve.grab().isNull()
    assert any("Training finished" in m and str(best) in m for m in shown["info"])
    assert "tuned" in widget.controls.status.value
    assert widget.controls.progress_bar.value == widget.controls.progress_bar.max


def test_stop_during_a_threaded_run_keeps_a_valid_registered_model(
    qtbot, tmp_path, tiny_start, shown, scan_viewer, model_library
):
    viewer = scan_viewer
    widget = dock(viewer, tmp_path, name="stopped", synchronous=False, epochs=500)

    widget.controls.run_button.changed.emit(True)
    assert widget.running
    qtbot.waitUntil(lambda: len(widget.curve.points) >= 1, timeout=60_000)
    widget.controls.cancel_button.changed.emit(True)
    assert "Stopping" in widget.controls.status.value
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)

    best = model_library / "stopped.safetensors"
    assert shown["error"] == []
    assert any("Training stopped at step" in m for m in shown["info"])
    loaded, _ = load_checkpoint(best)
    assert loaded.info.provenance["epochs_run"] >= 1
    assert registry.resolve("stopped") == best.resolve()
    bar = widget.controls.progress_bar
    assert 0 < bar.value < bar.max


def test_closing_the_dock_stops_a_threaded_run_and_keeps_its_model(
    qtbot, tmp_path, tiny_start, shown, scan_viewer, model_library
):
    viewer = scan_viewer
    widget = dock(viewer, tmp_path, name="closed", synchronous=False, epochs=500)
    widget.train()
    qtbot.waitUntil(lambda: len(widget.curve.points) >= 1, timeout=60_000)

    viewer.window.remove_dock_widget(widget.native)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)

    assert any("dock closed" in m for m in shown["info"])
    assert registry.resolve("closed") == (model_library / "closed.safetensors").resolve()
    assert not list((model_library / WORK_FOLDER).iterdir())


def test_single_rgb_image_trains_without_validation_and_says_so(make_napari_viewer, tmp_path, tiny_start, shown):
    ((image, label),) = synthetic_set(1, size=64, seed=4)
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([image, image // 2, image], axis=-1), name="colour", rgb=True)
    viewer.add_labels(label.astype(np.uint8), name="colour labels")
    widget = dock(viewer, tmp_path, name="single")

    widget.train()

    assert shown["error"] == []
    assert any("RGB" in m and "grey" in m for m in shown["info"])
    assert any("only one labelled image" in m and "without validation" in m for m in shown["info"])
    assert any("no validation" in m for m in shown["info"])
    assert registry.resolve("single").is_file()
    assert all(p.val_dice is None for p in widget.curve.points)


def test_partially_labelled_stack_uses_only_the_painted_slices(make_napari_viewer, tmp_path, tiny_start, stack):
    image, label = np.concatenate([stack[0], stack[0][:1]]), np.concatenate([stack[1], stack[1][:1]])
    label[[1, 3]] = 0
    viewer = make_napari_viewer()
    viewer.add_image(image, name="stack")
    viewer.add_labels(label, name="stack labels")
    widget = dock(viewer, tmp_path)

    read = widget.form.read()
    request, notes = read.request, read.notes

    assert [s.name for s in request.data.slices] == ["stack slice 0", "stack slice 2"]
    assert any("2 of 4 slices" in note and "skipped" in note for note in notes)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mismatched", ["'scan'", "(64, 64)", "'labels'", "(48, 48)"]),
        ("empty", ["'labels'", "are empty", "paint some vessels"]),
        ("all vessel", ["'scan'", "every pixel as vessel"]),
        ("tiny", ["'scan'", "only 20 x 20", "at least 32 x 32"]),
        ("no labels", ["Choose the vessel labels", "'scan'"]),
        ("name taken", [f"{START!r}", "already listed"]),
    ],
)
def test_form_problems_are_notified_and_start_nothing(
    make_napari_viewer, monkeypatch, tmp_path, tiny_start, shown, case, expected, model_library
):
    started = []
    monkeypatch.setattr(train_module, "train_job", lambda *args: started.append(args))
    ((image, label),) = synthetic_set(1, size=64, seed=2)
    label = label.astype(np.uint8)
    viewer = make_napari_viewer()
    if case == "tiny":
        image, label = image[:20, :20], label[:20, :20]
    viewer.add_image(image, name="scan")
    if case != "no labels":
        data = {"mismatched": label[:48, :48], "empty": np.zeros_like(label), "all vessel": np.ones_like(label)}
        viewer.add_labels(data.get(case, label), name="labels")
    widget = dock(viewer, tmp_path, name=START if case == "name taken" else "tuned")
    widget.controls.show_status("Training finished: 1 epoch(s) in 3 s on cpu.")  # the last run's

    widget.train()

    assert started == [] and not widget.running
    assert len(shown["error"]) == 1
    assert widget.controls.status.value == f"Not started: {shown['error'][0]}"
    for part in expected:
        assert part in shown["error"][0]
    assert "Traceback" not in shown["error"][0]
    assert not list(model_library.rglob("*.safetensors"))


def test_four_dimensional_layers_train_plane_by_plane(make_napari_viewer, tmp_path, tiny_start, stack):
    image = np.stack([stack[0][:2], stack[0][1:]])  # (2, 2, 64, 64)
    label = np.stack([stack[1][:2], stack[1][1:]])
    viewer = make_napari_viewer()
    viewer.add_image(image, name="4d")
    viewer.add_labels(label, name="4d labels")
    widget = dock(viewer, tmp_path)

    read = widget.form.read()
    request, notes = read.request, read.notes

    assert len(request.data.slices) == 4 and request.data.slices[3].name == "4d slice (1, 1)"
    assert any("4 dimensions" in note for note in notes)
    assert request.data.crop_size == 64


def test_pair_rows_match_labels_by_shape_and_can_be_added_and_removed(make_napari_viewer, tmp_path, stack):
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="a")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="other")
    viewer.add_labels(stack[1], name="a labels")
    viewer.add_image(stack[0][0], name="b")
    widget = dock(viewer, tmp_path, start=SCRATCH)
    table = widget.form.pairs
    table.rows[0].image.value = viewer.layers["a"]
    assert table.rows[0].label.value is viewer.layers["a labels"]
    assert not table.rows[0].remove_button.enabled

    second = table.add_row()
    assert second.image.value is viewer.layers["b"]
    assert second.label.value is viewer.layers["other"]  # the one layer of b's shape
    assert second.centerline.value is None
    table.remove_row(second)
    assert table.rows == [table.rows[0]] and not table.rows[0].remove_button.enabled


def test_starting_from_scratch_suggests_a_larger_learning_rate(make_napari_viewer, tmp_path, tiny_start):
    widget = dock(make_napari_viewer(), tmp_path)
    assert widget.form["lr"].value == pytest.approx(1e-4)
    widget.form["model"].value = SCRATCH
    assert widget.form["lr"].value == pytest.approx(1e-3)
    widget.form["lr"].value = 5e-4
    widget.form["model"].value = START
    assert widget.form["lr"].value == pytest.approx(5e-4)  # the user's own value stays
    widget.form["epochs"].value = 30
    assert widget.form["fine_epochs"].value == 6


def test_augmentation_is_off_for_fine_tuning_and_on_from_scratch(make_napari_viewer, tmp_path, tiny_start):
    widget = dock(make_napari_viewer(), tmp_path)
    assert not widget.form["augment"].value, "fine-tuning a trained model adapts best without augmentation"
    widget.form["model"].value = SCRATCH
    assert widget.form["augment"].value
    widget.form["model"].value = "default"  # last trained without flips and turns, as scans come
    assert not widget.form["augment"].value
    widget.form["augment"].value = True
    for model in ("default", SCRATCH, START):
        widget.form["model"].value = model
        assert widget.form["augment"].value, "the user's own choice stays"


def test_the_augment_box_draws_upright_views(tmp_path, tiny_start, shown, scan_viewer, model_library):
    widget = dock(scan_viewer, tmp_path)
    widget.form["augment"].value = True
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == []
    recorded = recorded_settings(load_checkpoint(model_library / "tuned.safetensors")[0].info.provenance)
    assert recorded is not None and recorded.augment == FINE_TUNE_AUGMENT
    assert not (FINE_TUNE_AUGMENT.flips or FINE_TUNE_AUGMENT.rot90) and FINE_TUNE_AUGMENT.noise_std > 0


def test_a_learning_rate_the_user_set_stays_even_where_it_equals_a_suggestion(make_napari_viewer, tmp_path, tiny_start):
    widget = dock(make_napari_viewer(), tmp_path)
    widget.form["lr"].value = 1e-3  # what the dock suggests from scratch, typed while fine-tuning
    for model in (SCRATCH, START, SCRATCH, START):
        widget.form["model"].value = model
        assert widget.form["lr"].value == pytest.approx(1e-3)
    widget.form["lr"].value = 1e-4  # back to the suggestion: the dock suggests again
    widget.form["model"].value = SCRATCH
    assert widget.form["lr"].value == pytest.approx(1e-3)


def test_an_untouched_form_asks_for_the_cores_fine_tuning_defaults(scan_viewer, model_library):
    """The form's starting values and a request made without them come from one place in the core."""
    widget = TrainWidget(scan_viewer, synchronous=True)
    request = widget.form.read().request
    bare = TrainRequest(request.data, request.folder, request.name, request.init)
    for field in ("epochs", "batch_size", "lr", "augment"):
        assert getattr(request, field) == getattr(bare, field), field
    assert (request.epochs, request.batch_size, request.lr) == (FINE_TUNE_EPOCHS, FINE_TUNE_BATCH_SIZE, FINE_TUNE_LR)
    assert widget.form["batch"].min == MIN_BATCH_SIZE


def test_default_name_is_fresh_and_nothing_is_written_before_training(make_napari_viewer, model_library):
    widget = TrainWidget(make_napari_viewer(), synchronous=True)
    assert widget.form["name"].value.startswith("finetuned-") and widget.form["name"].value not in registry.names()
    assert not model_library.exists()


def test_progress_and_epoch_size_helpers():
    from napari_octanet.core.training.trainer import TrainEvent

    step = progress_of(TrainEvent("step", 1, 0, 10, 5, 10, 0.5), (10, 2), 10)
    assert (step.done, step.total) == (5, 120) and "epoch 1/10: step 5/10" in step.message
    epoch = progress_of(TrainEvent("epoch", 2, 1, 2, 10, 10, 0.25, 0.8, 0.8), (10, 2), 10)
    assert epoch.done == 110 and "Stage 2 (SRS, fine)" in epoch.message and "Dice 0.800" in epoch.message
    pair = ImagePair(
        NamedArray("x", np.zeros((2, 96, 64), np.uint8)),
        NamedArray("y", np.ones((2, 96, 64), np.uint8) * np.eye(96, 64, dtype=np.uint8)),
    )
    data = labelled_slices([pair])
    assert data.crop_size == 64
    request = TrainRequest(data, Path("f"), "n", None, epochs=7)
    assert request.stage_epochs == (7, 1) and request.best_path == Path("f/n.safetensors")

    class Image:
        image = np.zeros((96, 64))

    assert samples_per_epoch([Image()], batch_size=4, crop_size=64) == 16  # at least 4 batches
    assert samples_per_epoch([Image()] * 20, batch_size=4, crop_size=64) == 40  # 2 crops cover each image


def test_batch_size_one_is_refused_with_the_reason(make_napari_viewer, tmp_path, tiny_start):
    widget = dock(make_napari_viewer(), tmp_path)
    with pytest.raises(ValueError, match="outside of the allowed range"):
        widget.form["batch"].value = 1
    widget.form["batch"].native.setValue(1)  # typing 1 in the box
    assert widget.form["batch"].value == 2
    assert "batch normalisation" in widget.form["batch"].tooltip and "at least 2" in widget.form["batch"].tooltip


def test_the_bar_moves_per_step_and_a_stop_reads_where_it_stopped(
    monkeypatch, tmp_path, tiny_start, shown, scan_viewer, model_library
):
    from napari_octanet.core.training import trainer

    widget = dock(scan_viewer, tmp_path, epochs=2)
    bar = widget.controls.progress_bar
    seen = []

    def stopped_by_the_user(train, val, settings, should_stop, provenance):
        steps = 4
        for step in range(1, steps + 1):
            yield trainer.TrainEvent("step", 1, 0, 2, step, steps, 0.5)
            seen.append(bar.value)
            if step == 3:
                widget.controls.cancel()  # the user presses Stop during step 3
            if should_stop():
                break
        yield trainer.TrainEvent("done", 1, 0, 2, message="training cancelled")
        return trainer.TrainResult(None, tmp_path / "x-last.safetensors", -1.0, "cancelled", [], "cpu")

    monkeypatch.setattr(trainer, "iter_train", stopped_by_the_user)
    widget.train()

    assert seen == [1, 2, 3]
    assert (bar.value, bar.max) == (3, 4 * 3)  # 2 SCS + 1 SRS epochs of 4 steps
    assert "stopped at step 3 of 12" in widget.controls.status.value
    assert "no model was saved" in widget.controls.status.value
    assert not list(model_library.rglob("*.safetensors"))
    assert not list((model_library / WORK_FOLDER).iterdir()), "the run's empty working folder is removed"


def test_fine_tuning_on_corrections_registers_a_model_a_new_process_lists(
    monkeypatch, tmp_path, tiny_start, shown, scan_viewer, stack, model_library
):
    runs = []
    real = inference.iter_segment
    monkeypatch.setattr(inference, "iter_segment", lambda *a, **k: runs.append(k) or (yield from real(*a, **k)))
    viewer = scan_viewer
    viewer.layers.remove("scan labels")
    segment = segmenting(viewer)
    segment.form["correct"].changed.emit(True)
    corrections = viewer.layers["scan corrections"]
    corrections.data = stack[1]  # the user's corrected vessels
    widget = dock(viewer, tmp_path, name="from corrections")
    assert widget.form.pairs.rows[0].label.value is corrections

    widget.train()

    assert shown["error"] == []
    code = "from napari_octanet.core.registry import registry; print(registry.names())"
    listed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, ENV_VAR: str(model_library)}, capture_output=True, text=True
    )
    assert "'from corrections'" in listed.stdout
    dock_runs = [run for run in runs if "tta" in run]  # (validation calls the core too)
    assert segment.form["model"].value == "from corrections" and len(dock_runs) == 2  # selected, and segmented again
    assert any("before fine-tuning" in m for m in shown["info"])  # validation Dice before and after


def test_an_unedited_result_is_never_picked_and_training_on_it_is_refused(
    make_napari_viewer, tmp_path, tiny_start, shown, stack, model_library
):
    viewer = make_napari_viewer()
    viewer.add_image(stack[0][0], name="a")
    segmenting(viewer)
    result = viewer.layers["a vessels"]
    widget = dock(viewer, tmp_path)
    row = widget.form.pairs.rows[0]
    assert row.label.value is None, "the model's own output is not labels to learn from"

    row.label.value = result  # picked by hand
    widget.train()

    assert len(shown["error"]) == 1 and "'a vessels'" in shown["error"][0]
    assert "Paint your corrections on it" in shown["error"][0] and "labels you drew" in shown["error"][0]
    assert not list(model_library.rglob("*.safetensors"))

    paint(result)
    assert row.label.value is result and result.name == "a corrections"  # now the user's labels


def test_the_newest_corrections_of_an_image_are_the_ones_used(make_napari_viewer, tmp_path, tiny_start, shown, stack):
    """Painting a later run's fresh result makes a second corrections layer: it takes over, and says so."""
    viewer = make_napari_viewer()
    viewer.add_image(stack[0][0], name="scan")
    segment = segmenting(viewer)
    segment.make_corrections_layer()  # 'Correct this result': a copy, on top of the layer list
    widget = dock(viewer, tmp_path)
    row = widget.form.pairs.rows[0]
    first = viewer.layers["scan corrections"]
    assert row.label.value is first
    painted_later = viewer.layers["scan vessels"]  # below the copy in the layer list, but painted after it
    paint(painted_later)
    segment.segment()
    paint(newest := viewer.layers["scan vessels"])

    assert (painted_later.name, newest.name) == ("scan corrections [1]", "scan corrections [2]")
    assert find_corrections(viewer, str(viewer.layers["scan"].unique_id)) is newest
    assert row.label.value is newest
    assert any("takes over from 'scan corrections [1]'" in m for m in shown["info"])
    segment.make_corrections_layer()
    assert viewer.layers.selection.active is newest


def test_closing_a_run_keeps_its_best_model_and_removes_its_working_folder(
    monkeypatch, tiny_checkpoint, stack, model_library
):
    """The dock closed mid-run closes the job (on the GUI thread, after the trainer's last step)."""
    from napari_octanet.core.training import trainer

    def one_epoch_then_steps(train, val, settings, should_stop, provenance):
        shutil.copy(tiny_checkpoint, settings.out)  # the first epoch's best model
        while True:
            yield trainer.TrainEvent("step", 1, 1, 5, 1, 4, 0.5)

    monkeypatch.setattr(trainer, "iter_train", one_epoch_then_steps)
    folder = model_library / WORK_FOLDER / "closed-run"
    folder.mkdir(parents=True)
    pair = ImagePair(NamedArray("scan", stack[0][0]), NamedArray("scan labels", stack[1][0]))
    job = train_job(TrainRequest(labelled_slices([pair]), folder, "closed", None), lambda: False)
    while next(job).event is None:
        pass

    job.close()

    assert not folder.exists()
    assert (model_library / "closed.safetensors").is_file()


def test_a_narrow_labels_choice_shows_the_end_of_the_name(make_napari_viewer, tmp_path, stack):
    """Names that differ only at their end must not read the same once elided."""
    viewer = make_napari_viewer()
    viewer.add_image(stack[0][0], name="OCTA500_3M_val_1")
    for role in ("vessels", "corrections"):
        viewer.add_labels(stack[1][0], name=f"OCTA500_3M_val_1 {role}")
    widget = dock(viewer, tmp_path, start=SCRATCH)
    combo = widget.form.pairs.rows[0].label
    combo.native.setFixedSize(120, 24)

    looks = []
    for role in ("vessels", "corrections"):
        combo.value = viewer.layers[f"OCTA500_3M_val_1 {role}"]
        looks.append(combo.native.grab().toImage())

    assert looks[0] != looks[1]


def test_a_model_trained_meanwhile_is_listed_among_the_registered_models(
    make_napari_viewer, tmp_path, tiny_start, model_library
):
    widget = dock(make_napari_viewer(), tmp_path, start=SCRATCH)
    model_library.mkdir()
    registry.register(shutil.copy(tiny_start, model_library / "new.safetensors"))

    assert widget.form["model"].choices == (*registry.names(), SCRATCH, CHECKPOINT_FILE)
    assert "new" in registry.names()
    assert widget.form["model"].value == SCRATCH


def test_a_closed_dock_is_freed(make_napari_viewer):
    """napari's X only takes the widget out of its dock: a registry listener kept it alive for good."""
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    viewer.window.remove_dock_widget(widget.native)
    closed = weakref.ref(widget)

    del widget
    gc.collect()

    assert closed() is None


def test_the_starting_model_is_scored_once_and_the_dice_shown_is_the_trainers(
    monkeypatch, tmp_path, tiny_start, shown, scan_viewer, model_library
):
    """The trainer scores the starting model on the held-out slices; "before" and "after" are its figures."""
    import torch

    from napari_octanet.core.training import trainer

    start = load_checkpoint(tiny_start)[0].network.state_dict()
    scored_the_start, results = [], []

    def scoring(model, *args, **kwargs):
        weights = getattr(model, "network", model).state_dict()  # a loaded checkpoint or a network
        scored_the_start.append(
            all(torch.equal(weights[key].cpu(), start[key].to(weights[key].dtype)) for key in start)
        )
        return real_segment(model, *args, **kwargs)

    def keeping_the_result(*args, **kwargs):
        results.append((yield from real_train(*args, **kwargs)))
        return results[-1]

    real_segment, real_train = inference.segment, trainer.iter_train
    ours = [module for name, module in sys.modules.items() if name.startswith("napari_octanet.")]
    for module in ours:  # wherever the core (or the dock) took the function in, however it is split up
        if getattr(module, "segment", None) is real_segment:
            monkeypatch.setattr(module, "segment", scoring)
    monkeypatch.setattr(trainer, "iter_train", keeping_the_result)

    dock(scan_viewer, tmp_path).train()

    assert shown["error"] == []
    (result,) = results
    assert result.starting_dice is not None and result.best_dice is not None
    assert scored_the_start.count(True) == 1
    (message,) = [m for m in shown["info"] if "Training finished" in m]
    assert (
        f"validation Dice {result.best_dice:.3f} on 1 held-out slice(s), {result.starting_dice:.3f} before" in message
    )
    provenance = load_checkpoint(model_library / "tuned.safetensors")[0].info.provenance
    assert provenance["val_dice_before"] == result.starting_dice


@pytest.mark.parametrize(
    ("scale", "pixel_size_um", "remark"),
    [(9.87, 9.87, None), (1.0, None, None), (0.00987, None, "looks like mm per pixel")],
    ids=["um", "unset", "mm"],
)
def test_an_image_layers_scale_in_um_is_its_training_pixel_size(
    monkeypatch, make_napari_viewer, tmp_path, tiny_start, shown, stack, model_library, scale, pixel_size_um, remark
):
    """A scale in µm per pixel goes with the images to the trainer; napari's unset scale (1) means unknown,
    silently; a scale set in mm means unknown too, and the dock says why."""
    from napari_octanet.core.training import trainer

    trained_on = []

    def recording(train, val, settings, should_stop, provenance):
        trained_on.extend(image.pixel_size_um for image in (*train, *val))
        yield trainer.TrainEvent("done", 1, 0, 1, message="training cancelled")
        return trainer.TrainResult(None, None, None, "cancelled", [], "cpu")

    monkeypatch.setattr(trainer, "iter_train", recording)
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="scan", scale=(1, scale, scale))
    viewer.add_labels(stack[1], name="scan labels", scale=(1, scale, scale))

    dock(viewer, tmp_path).train()

    assert trained_on == [pixel_size_um] * 3
    unknown = [m for m in shown["info"] if "pixel size unknown" in m]
    if remark is None:
        assert unknown == []
    else:
        assert len(unknown) == 1 and "'scan'" in unknown[0] and remark in unknown[0]
