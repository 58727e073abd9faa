from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from builders import octanet_command, one_thread_environment
from napari_octanet.core.checkpoint import load_checkpoint, load_model
from napari_octanet.core.preprocess import InputError
from napari_octanet.core.progress import run_to_end
from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.core.training.augment import AugmentConfig, augment, random_crop
from napari_octanet.core.training.averaging import WeightAverage, saved_average
from napari_octanet.core.training.checkpoints import load_optimizer_state, optimizer_state_tensors
from napari_octanet.core.training.data import make_batch, same_size_batches, split_train_val, training_image
from napari_octanet.core.training.losses import skeleton_recall_loss
from napari_octanet.core.training.settings import parse_crop_size
from napari_octanet.core.training.trainer import TrainSettings, iter_train, train
from napari_octanet.core.training.validation import Scores, mean_over_groups
from tiny_models import TINY


def tiny_images(n: int = 4, size: int = 64) -> list:
    return [training_image(*synthetic_octa(size, seed=i), name=f"s{i}") for i in range(n)]


@pytest.fixture
def tiny_init(tiny_checkpoint: Path) -> str:
    return str(tiny_checkpoint)


def settings(tmp_path: Path, init: str, **overrides: object) -> TrainSettings:
    values = dict(
        out=str(tmp_path / "run" / "model.safetensors"),
        init=init,
        epochs=2,
        fine_epochs=1,
        batch_size=2,
        lr=3e-3,
        crop_size=64,
        samples_per_epoch=8,
        device="cpu",
        seed=0,
    )
    values.update(overrides)
    return TrainSettings(**values)  # type: ignore[arg-type]


def test_a_few_steps_lower_the_loss(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    result = train(
        images, images[:1], settings(tmp_path, tiny_init, epochs=6, fine_epochs=0, augment=AugmentConfig.none())
    )
    losses = [h["loss"] for h in result.history if h["stage"] == 1]
    assert len(losses) == 6
    assert losses[-1] < losses[0]
    assert result.stopped == "completed"
    model = load_model(result.best_path)
    assert model.info.provenance["best_validation"]["val_dice"] == pytest.approx(result.best_dice)


def test_stop_leaves_valid_checkpoints(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    events = []
    steps = iter(range(100))

    def stop_after_two_epochs() -> bool:
        next(steps)
        return sum(e.kind == "epoch" for e in events) >= 2

    generator = iter_train(
        images, images[:1], settings(tmp_path, tiny_init, epochs=5), should_stop=stop_after_two_epochs
    )
    with pytest.raises(StopIteration) as stop:
        while True:
            events.append(next(generator))
    result = stop.value.value
    assert result.stopped == "cancelled"
    assert events[-1].kind == "done"
    load_model(result.best_path)
    last, optimizer = load_checkpoint(result.last_path)
    assert last.info.training_state["epoch"] == 2 and last.info.training_state["stage"] == 1
    assert optimizer, "the resume state must carry the optimizer"


def test_resume_continues_from_the_saved_epoch(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    first = train(images, images[:1], settings(tmp_path, tiny_init, epochs=2, fine_epochs=0, keep_resume_state=True))
    resumed = train(
        images, images[:1], settings(tmp_path, tiny_init, epochs=4, fine_epochs=0, resume=str(first.last_path))
    )
    epochs = [(h["stage"], h["epoch"]) for h in resumed.history]
    assert epochs == [(1, 1), (1, 2), (1, 3), (1, 4)]


def test_a_run_stopped_mid_epoch_resumes_at_the_next_step_as_if_unbroken(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    recipe = dict(epochs=2, fine_epochs=0, ema_decay=0.9, keep_resume_state=True)
    unbroken = train(images, [], settings(tmp_path / "unbroken", tiny_init, **recipe))
    steps_taken = iter(range(100))
    stopped = train(
        images, [], settings(tmp_path / "broken", tiny_init, **recipe), should_stop=lambda: next(steps_taken) == 6
    )
    assert stopped.stopped == "cancelled"
    assert load_checkpoint(stopped.last_path)[0].info.training_state["epoch_step"] == 2
    resumed_run = settings(tmp_path / "broken", tiny_init, **recipe, resume=str(stopped.last_path))
    events = list(_events(iter_train(images, [], resumed_run)))
    assert [e.step for e in events if e.kind == "step"] == [3, 4], "only the epoch's last two steps are left"
    expected, got = load_model(unbroken.last_path).network.state_dict(), load_model(resumed_run.last_path()).network
    for key, value in got.state_dict().items():
        torch.testing.assert_close(value, expected[key], msg=key)


def test_a_resumed_run_names_each_setting_it_changes(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    first = settings(tmp_path, tiny_init, epochs=1, fine_epochs=0, lr=5e-4, keep_resume_state=True)
    last = str(train(images, images[:1], first).last_path)

    def start_message(**changes: object) -> str:
        resumed = replace(first, resume=last, **changes)
        return next(iter_train(images, images[:1], resumed)).message

    assert "changed settings" not in start_message()
    message = start_message(lr=1e-3, augment=AugmentConfig.flips_and_turns())
    assert "resuming with changed settings: lr 0.001 (was 0.0005), augment flips (was full)" in message


def test_cli_resume_keeps_the_interrupted_runs_recipe(tmp_path: Path, tiny_init: str) -> None:
    """``--resume`` alone continues the run as it was started; an option given with it changes only that."""
    from napari_octanet.cli import main

    _write_pairs(tmp_path / "data", 2)
    out = tmp_path / "model.safetensors"
    recipe = ["--batch-size", "2", "--lr", "5e-4", "--crop-size", "64", "--samples-per-epoch", "4"]
    recipe += ["--augment", "flips", "--ema", "0.9", "--seed", "7", "--patience", "3"]
    common = ["train", str(tmp_path / "data"), "--val-split", "val", "--device", "cpu", "--out", str(out)]
    first = [*common, "--init", tiny_init, "--epochs", "1", "--fine-epochs", "0", *recipe, "--keep-resume-state"]
    last = out.with_name("model-last.safetensors")
    assert main(first) == 0
    started = load_model(last).info.provenance["settings"]
    assert main([*common, "--resume", str(last), "--epochs", "2", "--keep-resume-state"]) == 0
    resumed = load_model(last).info.provenance["settings"]
    assert [h["epoch"] for h in load_model(last).info.provenance["history"]] == [1, 2]
    assert resumed["epochs"] == 2 and started["epochs"] == 1
    for name in ("batch_size", "lr", "crop_size", "samples_per_epoch", "augment", "ema_decay", "seed", "patience"):
        assert resumed[name] == started[name], name


def test_closing_the_generator_saves_the_last_state(tmp_path: Path, tiny_init: str) -> None:
    generator = iter_train(tiny_images(), [], settings(tmp_path, tiny_init))
    kinds = [next(generator).kind for _ in range(8)]
    assert kinds[0] == "start" and "epoch" in kinds
    generator.close()
    load_checkpoint(settings(tmp_path, tiny_init).last_path())


def test_closing_before_an_epoch_ends_keeps_nothing(tmp_path: Path, tiny_init: str) -> None:
    """An interrupted first epoch leaves no model and no resume state: nothing untrained poses as a result."""
    run = settings(tmp_path, tiny_init)
    generator = iter_train(tiny_images(), [], run)
    assert [next(generator).kind for _ in range(2)] == ["start", "step"]
    generator.close()
    assert not Path(run.out).exists() and not run.last_path().exists()


def test_stopping_before_an_epoch_ends_writes_no_model(tmp_path: Path, tiny_init: str) -> None:
    run = settings(tmp_path, tiny_init)
    result = train(tiny_images(), [], run, should_stop=lambda: True)
    assert result.stopped == "cancelled" and result.best_path is None and result.last_path is None
    assert not Path(run.out).exists()


def test_every_step_is_reported(tmp_path: Path, tiny_init: str) -> None:
    events = list(_events(iter_train(tiny_images(), [], settings(tmp_path, tiny_init, epochs=2, fine_epochs=1))))
    steps = [e for e in events if e.kind == "step"]
    # 8 samples per epoch in batches of 2: 4 steps, 3 epochs in all
    assert len(steps) == 12
    assert [(e.stage, e.done, e.total) for e in steps[:5]] == [(1, 1, 8), (1, 2, 8), (1, 3, 8), (1, 4, 8), (1, 5, 8)]
    epoch_ends = [(e.stage, e.done, e.total) for e in events if e.kind == "epoch"]
    assert epoch_ends == [(1, 4, 8), (1, 8, 8), (2, 4, 4)]


def _events(generator):
    while True:
        try:
            yield next(generator)
        except StopIteration:
            return


def test_without_validation_the_lowest_loss_is_best_and_stops_early(tmp_path: Path, tiny_init: str) -> None:
    """Stage-1 losses are above 1: the old rule (score starting at -1) never marked an epoch best."""
    events = list(
        _events(
            iter_train(tiny_images(), [], settings(tmp_path, tiny_init, epochs=40, fine_epochs=0, patience=1, lr=1e-9))
        )
    )
    epochs = [e for e in events if e.kind == "epoch"]
    assert epochs[0].loss > 1.0 and "(best)" in epochs[0].message
    assert len(epochs) < 40, "a loss that does not fall must stop the run early"
    assert "early-stopped" in events[-1].message
    assert Path(settings(tmp_path, tiny_init).out).is_file()


def test_completed_runs_drop_the_resume_state_unless_asked(tmp_path: Path, tiny_init: str) -> None:
    result = train(tiny_images(2), [], settings(tmp_path, tiny_init, epochs=1, fine_epochs=0))
    assert result.last_path is None and not settings(tmp_path, tiny_init).last_path().exists()
    assert result.best_path is not None and result.best_path.is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 1}, "batch normalisation needs at least 2"),
        ({"batch_size": 0}, "batch size 0"),
        ({"config": TINY, "epochs": 0}, "untrained network"),
        ({"lr": 0.0}, "learning rate"),
        ({"crop_size": 40}, "multiple of 32"),
        ({"config": TINY, "freeze_batch_norm": True}, "from scratch has none"),
        ({"batch_size": 0, "freeze_batch_norm": True}, "batch size 0"),
    ],
)
def test_bad_settings_are_refused_before_any_work(
    tmp_path: Path, tiny_init: str, overrides: dict, message: str
) -> None:
    init = None if "config" in overrides else tiny_init
    with pytest.raises(InputError, match=message):
        train(tiny_images(2), [], settings(tmp_path, init, **overrides))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_an_existing_model_is_not_replaced_without_being_asked(tmp_path: Path, tiny_init: str) -> None:
    out = tmp_path / "run" / "model.safetensors"
    out.parent.mkdir()
    out.write_bytes(b"a model the user keeps")
    with pytest.raises(ValueError, match="already exists.*--overwrite"):
        train(tiny_images(2), [], settings(tmp_path, tiny_init, epochs=1, fine_epochs=0))
    assert out.read_bytes() == b"a model the user keeps"
    train(tiny_images(2), [], settings(tmp_path, tiny_init, epochs=1, fine_epochs=0, overwrite=True))
    load_model(out)


@pytest.mark.parametrize("kind", ["folder", "below a file"])
def test_an_unwritable_output_is_refused_before_training(tmp_path: Path, tiny_init: str, kind: str) -> None:
    blocker = tmp_path / "blocker"
    if kind == "folder":
        blocker.mkdir()
        out = blocker
    else:
        blocker.write_text("not a folder")
        out = blocker / "model.safetensors"
    with pytest.raises(ValueError, match=str(out) if kind == "folder" else "cannot write into"):
        train(tiny_images(2), [], settings(tmp_path, tiny_init, out=str(out)))


def test_time_budget_ends_both_stages(tmp_path: Path, tiny_init: str) -> None:
    result = train(
        tiny_images(), [], settings(tmp_path, tiny_init, epochs=1000, fine_epochs=1000, time_budget_minutes=0.05)
    )
    stages = [h["stage"] for h in result.history]
    assert result.stopped == "completed"
    assert 1 in stages and 2 in stages and len(stages) < 2000


def test_fewer_images_than_a_batch(tmp_path: Path, tiny_init: str) -> None:
    result = train(
        tiny_images(2), [], settings(tmp_path, tiny_init, batch_size=4, samples_per_epoch=None, epochs=1, fine_epochs=0)
    )
    assert [h["epoch"] for h in result.history] == [1]


def test_same_seed_same_weights(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images(2)
    a = train(images, [], settings(tmp_path / "a", tiny_init, epochs=1, fine_epochs=0, keep_resume_state=True))
    b = train(images, [], settings(tmp_path / "b", tiny_init, epochs=1, fine_epochs=0, keep_resume_state=True))
    wa, wb = load_model(a.last_path).network.state_dict(), load_model(b.last_path).network.state_dict()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key])


def test_stage_two_changes_only_the_fine_stage(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images(2)
    one = train(images, [], settings(tmp_path / "1", tiny_init, epochs=1, fine_epochs=0, keep_resume_state=True))
    two = train(
        images, [], settings(tmp_path / "2", str(one.last_path), epochs=0, fine_epochs=1, keep_resume_state=True)
    )
    before, after = load_model(one.last_path).network, load_model(two.last_path).network
    for (name, p), q in zip(before.coarse.state_dict().items(), after.coarse.state_dict().values(), strict=False):
        torch.testing.assert_close(p, q, msg=name)
    assert any(not torch.equal(p, q) for p, q in zip(before.fine.parameters(), after.fine.parameters(), strict=False))


def _batch_norm_statistics(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if k.endswith(("running_mean", "running_var"))}


@pytest.mark.parametrize("freeze", [False, True])
def test_frozen_batch_norm_keeps_the_starting_statistics_and_still_trains(
    tmp_path: Path, tiny_init: str, freeze: bool
) -> None:
    start = load_model(tiny_init).network
    run = settings(tmp_path, tiny_init, epochs=1, fine_epochs=1, freeze_batch_norm=freeze, keep_resume_state=True)
    result = train(tiny_images(2), [], run)
    trained = load_model(result.last_path).network
    before, after = _batch_norm_statistics(start), _batch_norm_statistics(trained)
    assert before.keys() == after.keys() and len(before) > 20
    moved = [name for name in before if not torch.equal(before[name], after[name])]
    assert (moved == []) if freeze else (len(moved) == len(before))
    assert any(not torch.equal(p, q) for p, q in zip(start.parameters(), trained.parameters(), strict=True))
    assert load_model(result.last_path).info.provenance["settings"]["freeze_batch_norm"] is freeze


def test_frozen_batch_norm_trains_one_crop_per_batch_on_whole_images_without_the_size_warning(
    tmp_path: Path, tiny_init: str
) -> None:
    images = tiny_images(2, 64) + tiny_images(2, 96)
    run = settings(tmp_path, tiny_init, crop_size=None, batch_size=1, freeze_batch_norm=True, fine_epochs=1)
    events = iter_train(images, images[:1], run)
    start = next(events)
    assert "whole images" not in start.message
    result = run_to_end(events)
    assert result.stopped == "completed" and [h["stage"] for h in result.history] == [1, 1, 2]


@pytest.mark.parametrize(
    ("label", "message"),
    [(np.zeros((64, 64), bool), "every label is empty"), (np.ones((64, 64), bool), "every pixel")],
)
def test_useless_labels_are_refused(tmp_path: Path, tiny_init: str, label: np.ndarray, message: str) -> None:
    image = training_image(np.random.default_rng(0).random((64, 64)), label)
    with pytest.raises(InputError, match=message):
        train([image], [], settings(tmp_path, tiny_init))


def test_mismatched_label_names_both_shapes() -> None:
    with pytest.raises(InputError, match=r"\(64, 64\).*\(64, 60\)"):
        training_image(np.zeros((64, 64)), np.zeros((64, 60)))


def test_validation_split_is_held_out_and_never_everything() -> None:
    images = tiny_images(5, 32)
    train_set, val = split_train_val(images, 0.4, seed=1)
    assert len(val) == 2 and len(train_set) == 3
    assert not {i.name for i in val} & {i.name for i in train_set}
    assert split_train_val(images[:1], 0.5, seed=1) == (images[:1], [])


def test_augmentation_moves_image_and_targets_together() -> None:
    image = np.zeros((64, 64), np.float32)
    image[10:20, 30:34] = 1.0
    sample = training_image(image, image > 0)
    config = AugmentConfig(gamma_range=(1.0, 1.0), contrast_range=(1.0, 1.0), noise_std=0.0)
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        out = augment(random_crop(sample.stacked(), 64, generator), config, generator)
        assert torch.equal(out[0] > 0.5, out[3] > 0.5)


def test_small_images_are_padded_to_the_crop() -> None:
    sample = training_image(*synthetic_octa(48, seed=0))
    crop = random_crop(sample.stacked(), 64, torch.Generator().manual_seed(0))
    assert crop.shape == (4, 64, 64)
    assert crop[1:, 48:, :].sum() == 0


def test_whole_image_batches_hold_one_shape_each_in_draw_order() -> None:
    images = tiny_images(2, 64) + tiny_images(2, 96)
    order = [0, 2, 1, 3, 2, 0, 3, 1, 0]
    batches = same_size_batches(images, order, 2)
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [2, 3], [0, 1]]


def test_whole_image_batch_is_the_largest_square_that_fits() -> None:
    images = [training_image(*synthetic_octa(size, seed=0)) for size in (76, 100)]
    generator = torch.Generator().manual_seed(0)
    assert make_batch(images, [0, 0], None, AugmentConfig.none(), generator).shape == (2, 4, 64, 64)
    assert make_batch(images, [1, 1], None, AugmentConfig.none(), generator).shape == (2, 4, 96, 96)
    assert make_batch(images, [0, 1], None, AugmentConfig.none(), generator).shape == (2, 4, 64, 64)


def test_training_on_whole_images_of_two_sizes(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images(2, 64) + tiny_images(2, 96)
    events = iter_train(images, images[:1], settings(tmp_path, tiny_init, crop_size=None, epochs=1, fine_epochs=1))
    start = next(events)
    assert start.kind == "start" and "whole images of 2 sizes" in start.message
    result = run_to_end(events)
    assert result.stopped == "completed"
    assert [h["stage"] for h in result.history] == [1, 2]
    assert load_model(result.best_path).info.provenance["settings"]["crop_size"] is None


def test_whole_image_epochs_too_short_to_fill_a_batch_of_one_size_are_refused(tmp_path: Path, tiny_init: str) -> None:
    """8 draws over 3 sizes in batches of 8 may fill no batch: the epoch used to loop forever."""
    images = tiny_images(2, 64) + tiny_images(2, 96) + tiny_images(2, 128)
    short = settings(tmp_path / "a", tiny_init, crop_size=None, batch_size=8, samples_per_epoch=8)
    with pytest.raises(InputError, match="3 sizes.*at least 22 samples per epoch"):
        next(iter_train(images, [], short))
    enough = settings(tmp_path / "b", tiny_init, crop_size=None, batch_size=2, samples_per_epoch=4, epochs=1)
    assert run_to_end(iter_train(images, [], enough)).stopped == "completed"


def test_validation_scores_leave_undefined_images_out() -> None:
    """An image whose Dice is undefined (NaN) must not make the epoch's score NaN and break model selection."""
    by_group = {"a": [{"dice": 0.8}, {"dice": float("nan")}], "b": [{"dice": 0.6}], "c": [{"dice": float("nan")}]}
    assert mean_over_groups(by_group, "dice") == pytest.approx(0.7)


def test_whole_images_of_one_size_or_crops_bring_no_warning(tmp_path: Path, tiny_init: str) -> None:
    one_size = tiny_images(2, 64)
    start = next(iter_train(one_size, [], settings(tmp_path / "a", tiny_init, crop_size=None, epochs=1)))
    assert "whole images" not in start.message
    two_sizes = tiny_images(2, 64) + tiny_images(2, 96)
    start = next(iter_train(two_sizes, [], settings(tmp_path / "b", tiny_init, epochs=1)))
    assert "whole images" not in start.message


@pytest.mark.parametrize(("text", "size"), [("256", 256), ("whole", None), (" Whole ", None)])
def test_crop_size_is_read_as_a_number_or_whole(text: str, size: int | None) -> None:
    assert parse_crop_size(text) == size


def test_a_crop_size_that_is_neither_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'full'.*whole number.*'whole'"):
        parse_crop_size("full")


def _write_pairs(root: Path, n: int) -> None:
    from skimage.io import imsave

    for split in ("train", "val"):
        for kind in ("image", "label"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, label = synthetic_octa(64, seed=i + (100 if split == "val" else 0))
            imsave(root / split / "image" / f"{i}.png", image, check_contrast=False)
            imsave(root / split / "label" / f"{i}.png", (label * 255).astype(np.uint8), check_contrast=False)


def _octanet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(octanet_command(*args), capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_cli_train_then_evaluate(tmp_path: Path, tiny_init: str) -> None:
    _write_pairs(tmp_path / "data", 3)
    out = tmp_path / "model.safetensors"
    trained = _octanet(
        "train",
        str(tmp_path / "data"),
        "--val-split",
        "val",
        "--init",
        tiny_init,
        "--epochs",
        "1",
        "--fine-epochs",
        "1",
        "--batch-size",
        "2",
        "--crop-size",
        "64",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert trained.returncode == 0, trained.stderr
    assert out.is_file() and not out.with_name("model-last.safetensors").exists()
    assert "stage 1: " in trained.stderr and "step" in trained.stderr and "loss=" in trained.stderr, "a tqdm bar"
    evaluated = _octanet("evaluate", str(tmp_path / "data"), "--split", "val", "--model", str(out), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads(evaluated.stdout)
    assert summary["n_images"] == 3
    for key in ("dice", "auc", "acc", "sen", "spe", "fdr", "gmean", "iou"):
        assert 0.0 <= summary[key] <= 1.0 and f"{key}_std" in summary
    assert -1.0 <= summary["kappa"] <= 1.0


def test_cli_refuses_a_test_split_for_validation(tmp_path: Path) -> None:
    _write_pairs(tmp_path / "data", 1)
    result = _octanet("train", str(tmp_path / "data"), "--val-split", "test", "--out", str(tmp_path / "m.safetensors"))
    assert result.returncode == 2
    assert "test split" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path: Path, tiny_init: str) -> None:
    """The same command under torchrun with DistributedDataParallel on the CPU (gloo)."""
    _write_pairs(tmp_path / "data", 4)
    out = tmp_path / "ddp.safetensors"
    arguments = ["train", str(tmp_path / "data"), "--val-split", "val", "--init", tiny_init, "--epochs", "2"]
    arguments += ["--fine-epochs", "1", "--batch-size", "2", "--crop-size", "64", "--samples-per-epoch", "8"]
    arguments += ["--device", "cpu", "--keep-resume-state", "--out", str(out)]
    command = octanet_command(*arguments, ranks=2, port=29533)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=one_thread_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    last, _ = load_checkpoint(out.with_name("ddp-last.safetensors"))
    history = last.info.training_state["history"]
    assert [(h["stage"], h["epoch"]) for h in history] == [(1, 1), (1, 2), (2, 1)]
    # each of the 2 ranks ran 8 / (2 * 2) = 2 steps per epoch; one epoch line per epoch, from rank 0 only
    assert result.stderr.count("stage 1 epoch 1/2: loss") == 1


def _interrupted_training(
    tmp_path: Path, tiny_init: str, after: str, signum: signal.Signals = signal.SIGINT
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Start ``octanet train`` and send it ``signum`` (Ctrl-C's SIGINT) once stderr shows ``after``."""

    _write_pairs(tmp_path / "data", 2)
    out = tmp_path / "model.safetensors"
    arguments = ["train", str(tmp_path / "data"), "--val-fraction", "0", "--init", tiny_init, "--epochs", "1000"]
    arguments += ["--batch-size", "2", "--crop-size", "64", "--samples-per-epoch", "4", "--device", "cpu"]
    command = octanet_command(*arguments, "--threads", "1", "--out", str(out))
    # A shell that starts a command in the background without job control (`cmd &` in a script)
    # makes it ignore SIGINT, and its children inherit that: give the child the default again, so
    # that Python installs its KeyboardInterrupt handler whoever started the tests.
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = ""
    while after not in seen:
        seen += process.stderr.read(1)
        assert process.poll() is None or after in seen, seen
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, seen + stderr), out


@pytest.mark.slow
def test_ctrl_c_after_an_epoch_keeps_the_best_model_and_exits_130(tmp_path: Path, tiny_init: str) -> None:
    result, out = _interrupted_training(tmp_path, tiny_init, "stage 1 epoch 2/1000")
    assert result.returncode == 130, result.stderr[-2000:]
    assert f"the best model so far is kept at {out}" in result.stderr and "Traceback" not in result.stderr
    assert load_model(out).info.provenance["epochs_run"] >= 1
    assert out.with_name("model-last.safetensors").is_file()


@pytest.mark.slow
def test_sigterm_after_an_epoch_keeps_the_best_model_and_the_resume_state(tmp_path: Path, tiny_init: str) -> None:
    result, out = _interrupted_training(tmp_path, tiny_init, "stage 1 epoch 2/1000", signal.SIGTERM)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    assert "stopped by SIGTERM" in result.stderr and "Traceback" not in result.stderr
    assert f"the best model so far is kept at {out}" in result.stderr
    assert load_model(out).info.provenance["epochs_run"] >= 1
    assert out.with_name("model-last.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_before_any_epoch_keeps_nothing(tmp_path: Path, tiny_init: str) -> None:
    result, out = _interrupted_training(tmp_path, tiny_init, "training on cpu")
    assert result.returncode == 130, result.stderr[-2000:]
    assert "nothing was kept" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not out.with_name("model-last.safetensors").exists()


def test_cli_train_lists_images_left_out(tmp_path: Path, tiny_init: str, capsys: pytest.CaptureFixture[str]) -> None:
    from skimage.io import imsave

    from napari_octanet.cli import main

    _write_pairs(tmp_path / "data", 2)
    imsave(tmp_path / "data" / "train" / "image" / "lonely.png", synthetic_octa(64, seed=9)[0], check_contrast=False)
    out = tmp_path / "model.safetensors"
    arguments = [
        "train",
        str(tmp_path / "data"),
        "--val-split",
        "val",
        "--init",
        tiny_init,
        "--epochs",
        "1",
        "--fine-epochs",
        "0",
        "--batch-size",
        "2",
        "--crop-size",
        "64",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(arguments) == 0
    error = capsys.readouterr().err
    assert "1 file(s) without a partner" in error and "lonely.png" in error


def test_prefetched_batches_come_in_order_and_the_thread_ends_when_closed() -> None:
    import threading

    from napari_octanet.core.training.data import prefetched

    def counting() -> Iterator[int]:
        yield from range(1000)

    batches = prefetched(counting(), depth=2)
    assert [next(batches) for _ in range(5)] == [0, 1, 2, 3, 4]
    batches.close()
    for thread in threading.enumerate():
        if thread.name == "octanet-batches":
            thread.join(timeout=2)
            assert not thread.is_alive()


def test_prefetched_thread_ends_when_closed_after_its_items_ran_out() -> None:
    import threading

    from napari_octanet.core.training.data import prefetched

    batches = prefetched(iter(range(2)), depth=1)
    assert next(batches) == 0
    time.sleep(0.3)  # the producer has queued 1 and waits to say that the items ran out
    batches.close()
    producers = [t for t in threading.enumerate() if t.name == "octanet-batches"]
    for thread in producers:
        thread.join(timeout=2)
    assert not any(thread.is_alive() for thread in producers)


def test_prefetched_raises_the_producers_error_in_the_consumer() -> None:
    from napari_octanet.core.training.data import prefetched

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad crop")

    batches = prefetched(failing())
    assert next(batches) == 1
    with pytest.raises(ValueError, match="bad crop"):
        next(batches)


def test_flips_preset_only_permutes_pixels() -> None:
    from napari_octanet.core.training.settings import AUGMENTS

    stack = torch.arange(4 * 8 * 8, dtype=torch.float32).reshape(4, 8, 8) / 256
    generator = torch.Generator().manual_seed(3)
    for _ in range(8):
        out = augment(stack, AUGMENTS["flips"], generator)
        assert torch.equal(out[0].flatten().sort().values, stack[0].flatten().sort().values)


def test_upright_preset_keeps_the_scan_orientation_and_varies_its_intensities() -> None:
    from napari_octanet.core.training.settings import AUGMENTS

    image = np.full((64, 64), 0.3, np.float32)
    image[4:14, 4:30] = 0.9  # a bar in the top-left corner, wider than tall
    stack = training_image(image, image > 0.5).stacked()
    generator = torch.Generator().manual_seed(3)
    for _ in range(16):
        out = augment(stack, AUGMENTS["upright"], generator)
        rows, cols = torch.nonzero(out[3] > 0.5, as_tuple=True)
        assert rows.float().mean() < 16 and cols.float().mean() < 24  # still top-left
        assert int(np.ptp(cols.numpy())) > int(np.ptp(rows.numpy()))  # still lying down
        assert not torch.allclose(out[0], stack[0], atol=0.01)


def test_provenance_counts_steps_and_keeps_the_starting_models_lineage(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    first = train(images, images[:1], settings(tmp_path / "a", tiny_init, epochs=2, fine_epochs=1))
    first_provenance = load_model(first.best_path).info.provenance
    # 8 crops per epoch in batches of 2: 4 steps an epoch
    assert first_provenance["steps_run"] == {"stage1": 8, "stage2": 4}
    second = train(images, images[:1], settings(tmp_path / "b", str(first.best_path), epochs=1, fine_epochs=0))
    lineage = load_model(second.best_path).info.provenance["started_from"]
    assert lineage["model"] == first.best_path.name
    assert lineage["steps_run"] == first_provenance["steps_run"]
    assert "history" not in lineage


def _scripted_validation(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> None:
    """Make validation return these Dice scores in turn (the first one scores the starting model)."""
    from napari_octanet.core.training.stages import Run

    queue = iter(scores)
    monkeypatch.setattr(Run, "validate", lambda self, stage: Scores(next(queue), 0.9, {}))


def test_fine_tuning_that_never_beats_the_start_keeps_the_starting_model(
    tmp_path: Path, tiny_init: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scripted_validation(monkeypatch, [0.8, 0.5, 0.6, 0.7])
    images = tiny_images()
    events = list(iter_train(images, images[:1], settings(tmp_path, tiny_init, epochs=2, fine_epochs=1)))
    kept = load_model(tmp_path / "run" / "model.safetensors")
    start = load_model(tiny_init)
    for name, tensor in start.network.state_dict().items():
        assert torch.equal(kept.network.state_dict()[name], tensor), name
    assert kept.info.provenance["kept_starting_model"] == {"val_dice": 0.8}
    assert events[-1].best_dice == 0.8 and "no epoch beat the starting model" in events[-1].message


def test_fine_tuning_that_beats_the_start_keeps_its_best_epoch(
    tmp_path: Path, tiny_init: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scripted_validation(monkeypatch, [0.5, 0.6, 0.7, 0.8])
    images = tiny_images()
    result = train(images, images[:1], settings(tmp_path, tiny_init, epochs=2, fine_epochs=1))
    assert result.best_dice == 0.8
    assert "kept_starting_model" not in load_model(result.best_path).info.provenance


def test_resumed_optimizer_moments_are_laid_out_like_their_channels_last_weights() -> None:
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(conv.parameters())
    conv(torch.rand(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    tensors = {name: value.contiguous() for name, value in optimizer_state_tensors(optimizer)[0].items()}  # as saved
    assert not tensors["state.0.exp_avg"].is_contiguous(memory_format=torch.channels_last)
    restored = torch.optim.Adam(conv.parameters())
    load_optimizer_state(restored, tensors)
    moment = restored.state[conv.weight]["exp_avg"]
    assert moment.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(moment, optimizer.state[conv.weight]["exp_avg"])


def test_weight_average_follows_the_weights_and_swaps_in_only_inside_its_block() -> None:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.5, updates=100)  # past the warm-up: the decay is 0.5
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average.update()
    with average.swapped_in():
        torch.testing.assert_close(layer.weight, torch.full((1, 2), 0.5))
    torch.testing.assert_close(layer.weight, torch.ones(1, 2))
    again = WeightAverage(layer, decay=0.5, saved=saved_average(average.state()))
    with again.swapped_in():
        torch.testing.assert_close(layer.weight, torch.full((1, 2), 0.5))


def test_weight_average_forgets_its_start_quickly_at_first() -> None:
    average = WeightAverage(torch.nn.Linear(2, 1), decay=0.999)
    assert average.current_decay() == pytest.approx(0.1)
    average.updates = 10_000
    assert average.current_decay() == 0.999


def test_with_ema_the_average_is_saved_and_the_trained_weights_resume(tmp_path: Path) -> None:
    images = tiny_images()
    result = train(
        images,
        images[:2],
        # from scratch: a fine-tuning run could keep its starting model instead of the average
        settings(tmp_path, "scratch", config=TINY, epochs=1, fine_epochs=0, ema_decay=0.9, keep_resume_state=True),
    )
    assert result.last_path is not None
    epoch = result.history[-1]
    assert epoch["val_dice_trained_weights"] is not None and set(epoch["val_dice_by_group"]) == {""}
    best = load_model(result.best_path).network.state_dict()
    last, extra = load_checkpoint(result.last_path)
    trained = last.network.state_dict()
    averaged = {"coarse." + name[len("ema.") :]: value for name, value in extra.items() if name.startswith("ema.")}
    assert averaged, "the resume state keeps the average"
    changed = [name for name in averaged if not torch.equal(averaged[name], trained[name])]
    assert changed, "after a few steps the average differs from the trained weights"
    for name in changed:
        torch.testing.assert_close(best[name], averaged[name])
    resumed = train(
        images,
        images[:2],
        settings(tmp_path, "scratch", config=TINY, epochs=2, ema_decay=0.9, resume=str(result.last_path)),
    )
    assert [h["epoch"] for h in resumed.history if h["stage"] == 1] == [1, 2]


def test_skeleton_recall_is_the_share_of_the_centerline_the_map_misses() -> None:
    skeleton = torch.zeros(1, 1, 8, 8)
    skeleton[0, 0, 4, :] = 1  # a vessel's 8 centerline pixels
    probability = torch.zeros(1, 1, 8, 8)
    probability[0, 0, 4, :6] = 1  # the map finds 6 of them
    assert skeleton_recall_loss(probability, skeleton).item() == pytest.approx(1 - 7 / 9)  # (6 + 1) / (8 + 1)


def test_skeleton_recall_weight_changes_the_training_loss(tmp_path: Path, tiny_init: str) -> None:
    images = tiny_images()
    plain = train(images, [], settings(tmp_path / "a", tiny_init, epochs=1, fine_epochs=0))
    weighted = train(images, [], settings(tmp_path / "b", tiny_init, epochs=1, fine_epochs=0, skeleton_recall=1.0))
    assert weighted.history[0]["loss"] > plain.history[0]["loss"]


@pytest.mark.parametrize("bad", [{"ema_decay": 1.0}, {"ema_decay": 0.0}, {"skeleton_recall": -1.0}])
def test_bad_ema_or_skeleton_weights_are_refused(tmp_path: Path, tiny_init: str, bad: dict[str, float]) -> None:
    with pytest.raises(InputError, match="EMA decay|skeleton recall"):
        train(tiny_images(), [], settings(tmp_path, tiny_init, **bad))


@pytest.mark.parametrize("mixed_precision", [None, False])
def test_cpu_training_steps_run_in_bfloat16_with_amx_unless_told_not_to(
    tmp_path: Path, tiny_init: str, monkeypatch: pytest.MonkeyPatch, mixed_precision: bool | None
) -> None:
    from napari_octanet.core import devices
    from napari_octanet.core.training import stages, trainer
    from napari_octanet.core.training.losses import dice_bce_loss

    monkeypatch.setattr(devices, "_cpu_has_amx", lambda: True)
    dtypes: set[torch.dtype] = set()

    def recording_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert not torch.is_autocast_enabled("cpu"), "the loss is computed in float32"
        dtypes.add(probability.dtype)
        return dice_bce_loss(probability, target)

    monkeypatch.setattr(stages, "get_loss", lambda name: recording_loss)
    images = tiny_images()
    run = settings(tmp_path, tiny_init, epochs=1, fine_epochs=1, mixed_precision=mixed_precision)
    messages = [event.message for event in trainer.iter_train(images, images[:1], run) if event.kind == "start"]
    assert dtypes == ({torch.bfloat16} if mixed_precision is None else {torch.float32})
    assert "bfloat16 autocast" in messages[0] if mixed_precision is None else "in float32" in messages[0]
