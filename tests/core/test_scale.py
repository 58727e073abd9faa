"""A scan's pixel size: one rule, folders that state it, models that know theirs, and resampling for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_octanet.core.checkpoint import CheckpointInfo, LoadedModel, load_model
from napari_octanet.core.inference import segment
from napari_octanet.core.scale import pixel_size_of_path, resolve_pixel_size, target_pixel_size, trained_scales
from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.core.training import augment as augment_module
from napari_octanet.core.training.augment import rescaled_crop
from napari_octanet.core.training.data import make_batch, training_image
from napari_octanet.core.training.settings import AUGMENTS, AugmentConfig, TrainSettings
from napari_octanet.core.training.trainer import train


def test_a_field_of_view_gives_the_pixel_size_and_a_conflicting_pair_is_refused() -> None:
    assert resolve_pixel_size() is None
    assert resolve_pixel_size(fov_mm=3, width_px=304) == pytest.approx(9.868, abs=1e-3)
    assert resolve_pixel_size(9.87, 3, 304) == 9.87  # agree within rounding
    with pytest.raises(ValueError, match=r"pixel size 12 µm and field of view 3 mm disagree.*give only one"):
        resolve_pixel_size(12, 3, 304)
    with pytest.raises(ValueError, match=r"pixel size 0.01 µm makes no sense"):
        resolve_pixel_size(0.01)


@pytest.mark.parametrize(
    ("path", "width", "expected"),
    [
        ("data/OCTA500_3M/val/image/1.png", 304, 3000 / 304),
        ("data/octa-500 6M/scan.png", 400, 15.0),
        ("data/ROSSA/val/image/1.png", 320, None),
        ("data/OCTA500_3M-x2/val/image/1.png", 608, None),
    ],
)
def test_only_folders_that_state_a_field_of_view_give_a_pixel_size(path: str, width: int, expected: float) -> None:
    assert pixel_size_of_path(Path(path), width) == (pytest.approx(expected) if expected else None)


OCTA500 = {
    "pixel_sizes_um": {"OCTA500_3M/train": 9.87, "OCTA500_6M/train": 15.0, "ROSSA/train_manual": None},
    "fields_of_view_mm": {"OCTA500_3M/train": 3.0, "OCTA500_6M/train": 6.0, "ROSSA/train_manual": None},
}


@pytest.mark.parametrize(
    ("pixel_size", "width", "expected"),
    [
        (4.935, 608, 9.87),  # a 3 mm scan at twice the pixels: back to the 3 mm training scans' size
        (11.54, 520, 15.0),  # a 6 mm scan at 520 px looks like the 6 mm training scans at 15 µm
        (13.16, 228, 9.87),  # a 3 mm scan at 228 px: a 3 mm field, so 9.87 µm
        (20.0, 400, 15.0),  # 8 mm: nearest the 6 mm scans
        (9.9, 304, None),  # the training size itself (within rounding): left as it is
    ],
)
def test_a_scan_is_resampled_to_the_training_size_of_its_field_of_view(
    pixel_size: float, width: int, expected: float | None
) -> None:
    assert target_pixel_size(pixel_size, width, OCTA500) == expected


def test_models_without_known_training_sizes_leave_scans_as_they_are_and_lineage_counts() -> None:
    assert target_pixel_size(4.9, 608, {}) is None
    assert trained_scales(OCTA500) == {"OCTA500_3M/train": (9.87, 3.0), "OCTA500_6M/train": (15.0, 6.0)}
    # a fine-tuned model whose own data have no known size still knows its starting model's
    fine_tuned = {"pixel_sizes_um": {"layers": None}, "fields_of_view_mm": {"layers": None}, "started_from": OCTA500}
    assert target_pixel_size(4.935, 608, fine_tuned) == 9.87


def test_the_bundled_models_know_their_training_scales() -> None:
    from napari_octanet.core.checkpoint import read_info
    from napari_octanet.core.registry import bundled_checkpoints

    for _, path in bundled_checkpoints():
        scales = trained_scales(read_info(path).provenance)
        assert scales["OCTA500_3M/train"] == pytest.approx((9.868, 3.0), abs=1e-3)
        assert scales["OCTA500_6M/train"] == pytest.approx((15.0, 6.0))


def _model_recording_input_sizes(tiny_checkpoint: Path, provenance: dict) -> tuple[LoadedModel, list]:
    loaded = load_model(tiny_checkpoint)
    model = LoadedModel(loaded.network, CheckpointInfo(loaded.info.network, provenance), loaded.source)
    seen: list[tuple[int, ...]] = []
    model.network.coarse.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    return model, seen


def test_inference_resamples_to_the_models_size_and_maps_back_to_the_scans_grid(tiny_checkpoint: Path) -> None:
    scales = {"pixel_sizes_um": {"a": 10.0}, "fields_of_view_mm": {"a": 1.28}}
    model, seen = _model_recording_input_sizes(tiny_checkpoint, scales)
    image, _ = synthetic_octa(128, seed=1)
    maps = segment(model, image, device="cpu", pixel_size_um=5.0)
    assert maps.fine.shape == image.shape and maps.pixel.shape == image.shape
    assert maps.pixel_size_um == 5.0 and maps.model_pixel_size_um == 10.0
    assert any("resampled to 10 µm per pixel" in note for note in maps.notes)
    plain = segment(model, image, device="cpu")
    assert plain.model_pixel_size_um is None and not any("resampled" in note for note in plain.notes)
    assert max(seen[0]) <= 96 and max(seen[-1]) >= 128  # 64 px padded to a multiple of 32, then 128


def test_inference_refuses_an_implausible_pixel_size(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="makes no sense"):
        segment(load_model(tiny_checkpoint), synthetic_octa(64, seed=0)[0], device="cpu", pixel_size_um=0.009)


def _stripe_stack(width_px: int, size: int = 128) -> torch.Tensor:
    label = np.zeros((size, size), np.float32)
    label[:, size // 2 : size // 2 + width_px] = 1
    centerline = np.zeros_like(label)
    centerline[:, size // 2 + width_px // 2] = 1
    return torch.from_numpy(np.stack([label * 0.8 + 0.1, label, centerline, label]))


def test_a_rescaled_crop_shows_the_vessels_at_the_drawn_pixel_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(augment_module, "NATIVE_SHARE", 0.0)
    crop = rescaled_crop(_stripe_stack(4, size=16), 32, 10.0, (5.0, 5.0), torch.Generator().manual_seed(0))
    assert crop.shape == (4, 32, 32)
    assert set(crop[1:].unique().tolist()) <= {0.0, 1.0}
    assert crop[3].sum(1).mean() == pytest.approx(8, abs=1)  # 4 px at 10 µm is 8 px at 5 µm
    assert crop[2].sum(1).mean() == pytest.approx(1, abs=0.3)  # the centerline stays one pixel wide


def test_rescaled_crops_never_pad_and_half_keep_the_scans_size() -> None:
    label = np.zeros((64, 64), np.float32)
    label[:, (np.arange(64) // 4) % 2 == 0] = 1  # stripes of 4 px, 8 a row in a 32 px crop
    stripes = torch.from_numpy(np.stack([label, label, label, label]))
    generator = torch.Generator().manual_seed(0)
    edges = [
        int(np.abs(np.diff(rescaled_crop(stripes, 32, 10.0, (3.0, 20.0), generator)[3, 0].numpy())).sum())
        for _ in range(200)
    ]
    native = sum(count in (7, 8) for count in edges)
    assert 60 < native < 160 and min(edges) < 4  # at 3 µm the stripes are 3.3 times wider
    # a label marking every pixel stays full however the crop is rescaled: nothing was padded
    full = torch.ones((4, 64, 64))
    assert all(bool(rescaled_crop(full, 32, 10.0, (3.0, 20.0), generator)[3].all()) for _ in range(50))


def test_make_batch_rescales_each_image_by_its_own_pixel_size() -> None:
    image, label = synthetic_octa(96, seed=2)
    known = training_image(image, label, pixel_size_um=20.0)
    batch = make_batch([known, known], [0, 1], 64, AUGMENTS["rescale"], torch.Generator().manual_seed(1))
    assert batch.shape == (2, 4, 64, 64)
    assert AUGMENTS["rescale"].rescale_range_um == (3.0, 20.0) and not AUGMENTS["rescale"].flips


def test_a_trained_model_records_its_data_sets_pixel_sizes_and_the_starting_dice(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    images = [
        training_image(*synthetic_octa(64, seed=i), name=f"s{i}", group=group, pixel_size_um=size)
        for i, (group, size) in enumerate([("a", 10.0), ("a", 10.0), ("b", None), ("b", None)])
    ]
    settings = TrainSettings(
        out=str(tmp_path / "m.safetensors"),
        init=str(tiny_checkpoint),
        epochs=1,
        fine_epochs=0,
        batch_size=2,
        crop_size=64,
        samples_per_epoch=4,
        device="cpu",
        augment=AugmentConfig.rescaled(),
    )
    result = train(images, images[:1], settings)
    provenance = load_model(result.best_path).info.provenance
    assert provenance["pixel_sizes_um"] == {"a": 10.0, "b": None}
    assert provenance["fields_of_view_mm"] == {"a": 0.64, "b": None}
    assert result.starting_dice is not None and 0 <= result.starting_dice <= 1
    stated = train(images, images[:1], TrainSettings(**{**vars(settings), "fov_mm": 1.28, "overwrite": True}))
    assert load_model(stated.best_path).info.provenance["pixel_sizes_um"] == {"a": 20.0, "b": 20.0}
