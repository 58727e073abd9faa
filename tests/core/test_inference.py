from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_octanet.core.checkpoint import load_model, save_checkpoint
from napari_octanet.core.devices import DeviceError, resolve_device
from napari_octanet.core.inference import UNTURNED_TTA_NOTE, iter_segment, segment, tile_windows
from napari_octanet.core.network import OctaNet, OctaNetOutput
from napari_octanet.core.preprocess import InputError, normalise, pad_to_multiple
from napari_octanet.core.progress import Progress
from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.core.thresholds import binarise
from napari_octanet.core.training.settings import AUGMENTS
from tiny_models import TINY


class EchoNet(nn.Module):
    """Shows exactly what the network was given: the (padded) input as the pixel map, half of it as
    the centerline map and its mirror image as the fine map, so any misplaced pad or crop shows."""

    def forward(self, image: torch.Tensor) -> OctaNetOutput:
        assert image.shape[-1] % 32 == 0 and image.shape[-2] % 32 == 0
        return OctaNetOutput(image, image * 0.5, image.flip(-1))


class OutOfMemoryAboveOne(EchoNet):
    """Simulates a GPU that cannot hold more than one slice at a time."""

    error: type[Exception] = torch.cuda.OutOfMemoryError

    def forward(self, image: torch.Tensor) -> OctaNetOutput:
        if image.shape[0] > 1:
            raise self.error("MPS backend out of memory (simulated)")
        return super().forward(image)


class MpsOutOfMemoryAboveOne(OutOfMemoryAboveOne):
    """Apple's MPS backend says so with a plain RuntimeError."""

    error = RuntimeError


@pytest.mark.parametrize("shape", [(32, 32), (33, 47), (304, 304), (320, 320), (400, 400), (97, 131)])
def test_2d_output_shapes_and_dtypes(tiny_network: OctaNet, shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    maps = segment(tiny_network, image, device="cpu")
    for output in (maps.pixel, maps.centerline, maps.fine):
        assert output.shape == shape
        assert output.dtype == np.float32
        assert output.min() >= 0.0 and output.max() <= 1.0


@pytest.mark.parametrize("shape", [(840, 840), (1024, 1024)])
def test_large_images(tiny_network: OctaNet, shape: tuple[int, int]) -> None:
    maps = segment(tiny_network, np.zeros(shape, np.uint16), device="cpu")
    assert maps.fine.shape == shape


def test_stack_keeps_its_shape_and_matches_slices(tiny_network: OctaNet) -> None:
    stack = np.random.default_rng(1).random((5, 48, 80)).astype(np.float32)
    maps = segment(tiny_network, stack, device="cpu", batch_size=2)
    assert maps.fine.shape == (5, 48, 80)
    single = segment(tiny_network, stack[3], device="cpu")
    # per-slice results do not depend on the batch they ran in (eval-mode batch norm)
    np.testing.assert_allclose(maps.fine[3], single.fine, atol=1e-4)


def test_padding_is_cropped_back_exactly() -> None:
    image = np.random.default_rng(2).random((45, 70)).astype(np.float32)
    maps = segment(EchoNet(), image, device="cpu")
    expected = normalise(image[None])[0]
    np.testing.assert_allclose(maps.pixel, expected, atol=1e-6)
    np.testing.assert_allclose(maps.centerline, expected * 0.5, atol=1e-6)
    # the flipped map shows the padding: the crop must keep the top-left corner of the padded array
    padded, _ = pad_to_multiple(expected[None])
    np.testing.assert_allclose(maps.fine, padded[0, :45, ::-1][:, :70], atol=1e-6)


def test_padding_leaves_no_seam(tiny_network: OctaNet) -> None:
    """Away from the padded border, a padded image gives the same output as one that needs no padding."""
    rng = np.random.default_rng(3)
    full = rng.random((64, 64)).astype(np.float32)
    full[0, 0], full[-1, -1] = 0.0, 1.0  # same min-max scaling for the crop below
    cropped = full[:, :50].copy()
    cropped[0, 1], cropped[-1, -2] = 0.0, 1.0
    full[0, 1], full[-1, -2] = 0.0, 1.0
    a = segment(tiny_network, full, device="cpu").pixel[:, :50]
    b = segment(tiny_network, cropped, device="cpu").pixel
    # the receptive field reaches the border region; the left half is far from it
    np.testing.assert_allclose(a[16:48, :16], b[16:48, :16], atol=0.05)


def test_bit_depth_and_storage_type_do_not_change_what_the_network_sees() -> None:
    """A 12-bit scan stored as uint16, an int32 copy and a float copy are the same scan as the 8-bit one."""
    scan = np.random.default_rng(4).integers(0, 256, (64, 64)).astype(np.uint8)
    as_8bit = segment(EchoNet(), scan, device="cpu").pixel
    assert as_8bit.max() == 1.0 and as_8bit.min() == 0.0
    for variant in (
        scan.astype(np.uint16) * 257,
        (scan.astype(np.uint32) * 4095 // 255).astype(np.uint16),
        scan.astype(np.int32) - 1000,
        scan.astype(np.float32) / 7.0 + 100.0,
    ):
        np.testing.assert_allclose(segment(EchoNet(), variant, device="cpu").pixel, as_8bit, atol=2e-3)


def test_a_hot_pixel_does_not_darken_the_scan() -> None:
    """One pixel far above the rest (a float scan) must not squash everything else towards 0."""
    scan = np.random.default_rng(6).random((64, 64)).astype(np.float32)
    hot = scan.copy()
    hot[10, 10] = 1000.0
    seen = segment(EchoNet(), hot, device="cpu").pixel
    assert seen[10, 10] == 1.0
    reference = segment(EchoNet(), scan, device="cpu").pixel
    assert np.abs(np.delete(seen.ravel(), 10 * 64 + 10) - np.delete(reference.ravel(), 10 * 64 + 10)).max() < 0.01


def test_each_slice_of_a_stack_is_scaled_on_its_own() -> None:
    scan = np.random.default_rng(7).random((64, 64)).astype(np.float32)
    stack = np.stack([scan, scan * 0.1 + 5.0])
    seen = segment(EchoNet(), stack, device="cpu").pixel
    np.testing.assert_allclose(seen[0], seen[1], atol=1e-4)


@pytest.mark.parametrize(
    "blank",
    [
        np.zeros((64, 64), np.uint8),
        np.full((64, 64), 200, np.uint8),
        np.full((64, 64), 0.7, np.float32),
        np.zeros((64, 64), np.float64),
    ],
)
def test_featureless_scans_get_empty_maps_and_a_note(tiny_network: OctaNet, blank: np.ndarray) -> None:
    maps = segment(tiny_network, blank, device="cpu")
    assert not maps.fine.any() and not maps.pixel.any() and not maps.centerline.any()
    assert any("featureless" in note for note in maps.notes)
    assert not binarise(maps.fine).any()


def test_a_featureless_slice_in_a_stack_is_named(tiny_network: OctaNet) -> None:
    stack = np.random.default_rng(8).integers(0, 256, (3, 64, 64)).astype(np.uint8)
    stack[1] = 17
    maps = segment(tiny_network, stack, device="cpu")
    assert not maps.fine[1].any() and maps.fine[0].any() and maps.fine[2].any()
    assert any("slice(s) 1 " in note for note in maps.notes)


def test_otsu_on_a_flat_map_finds_no_vessels() -> None:
    for value in (0.0, 0.3, 0.9, 1.0):
        assert not binarise(np.full((32, 32), value, np.float32)).any()


@pytest.mark.parametrize("length", [100, 1280, 1281, 2048, 3000, 4100])
def test_tile_windows_partition_the_axis_with_margins(length: int) -> None:
    windows = tile_windows(length, tile=1280, margin=128)
    kept = np.concatenate([np.arange(length)[inner] for _, inner in windows])
    np.testing.assert_array_equal(kept, np.arange(length))
    for tile, inner in windows:
        assert tile.stop - tile.start == min(length, 1280) and tile.start >= 0 and tile.stop <= length
        assert tile.start <= inner.start and inner.stop <= tile.stop
        assert inner.start - tile.start >= 128 or tile.start == 0
        assert tile.stop - inner.stop >= 128 or tile.stop == length


def test_large_scans_run_in_tiles_that_match_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a local network, tiling changes nothing; the tiles stay within the pass's pixel budget."""
    from napari_octanet.core import inference

    monkeypatch.setattr(inference, "MAX_PIXELS_PER_PASS", 128 * 128)
    monkeypatch.setattr(inference, "TILE_SIZE", 128)
    monkeypatch.setattr(inference, "TILE_MARGIN", 16)
    sizes: list[tuple[int, ...]] = []

    class Recording(EchoNet):
        def forward(self, image: torch.Tensor) -> OctaNetOutput:
            sizes.append(tuple(image.shape))
            return super().forward(image)

    image = np.random.default_rng(9).random((300, 250)).astype(np.float32)
    tiled = segment(Recording(), image, device="cpu")
    assert len(sizes) > 4 and all(shape[0] * shape[2] * shape[3] <= 128 * 128 for shape in sizes)
    monkeypatch.setattr(inference, "MAX_PIXELS_PER_PASS", 10**9)
    whole = segment(EchoNet(), image, device="cpu")
    np.testing.assert_array_equal(tiled.pixel, whole.pixel)
    np.testing.assert_array_equal(tiled.centerline, whole.centerline)


def test_batches_shrink_to_the_pixel_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_octanet.core import inference

    monkeypatch.setattr(inference, "MAX_PIXELS_PER_PASS", 2 * 64 * 64)
    sizes: list[int] = []

    class Recording(EchoNet):
        def forward(self, image: torch.Tensor) -> OctaNetOutput:
            sizes.append(image.shape[0])
            return super().forward(image)

    segment(Recording(), np.random.default_rng(10).random((5, 64, 64)), device="cpu", batch_size=4)
    assert sizes == [2, 2, 1]


def test_running_out_of_cpu_memory_is_a_clear_error() -> None:
    class Exhausted(EchoNet):
        def forward(self, image: torch.Tensor) -> OctaNetOutput:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: not enough memory")

    with pytest.raises(MemoryError, match="out of memory on the CPU.*64 x 64"):
        segment(Exhausted(), np.zeros((64, 64), np.float32) + np.eye(64, dtype=np.float32), device="cpu")


def test_prescaled_images_are_not_stretched_again() -> None:
    """Training images are already in [0, 1]; validating them must match the original file's scaling."""
    dim = np.random.default_rng(3).integers(20, 120, (64, 64), dtype=np.uint8)
    scaled = normalise(dim[None])[0]
    from_file = segment(EchoNet(), dim, device="cpu").pixel
    prescaled = segment(EchoNet(), scaled, device="cpu", prescaled=True).pixel
    np.testing.assert_allclose(prescaled, from_file, atol=1e-6)


def _turned(image: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    view = np.rot90(image, turns)
    return np.ascontiguousarray(view[:, ::-1] if mirrored else view)


def test_tta_is_the_mean_of_the_eight_views_turned_back(tiny_network: OctaNet) -> None:
    image = np.random.default_rng(5).random((64, 96)).astype(np.float32)
    views = []
    for turns in range(4):
        for mirrored in (False, True):
            fine = segment(tiny_network, _turned(image, turns, mirrored), device="cpu").fine
            views.append(np.rot90(fine[:, ::-1] if mirrored else fine, -turns))
    averaged = segment(tiny_network, image, device="cpu", tta=True).fine
    np.testing.assert_allclose(averaged, np.mean(views, axis=0), atol=1e-5)
    assert np.abs(averaged - views[0]).max() > 1e-4


def test_tta_maps_turn_with_the_image(tiny_network: OctaNet) -> None:
    """Averaged over all 8 views, the maps of a rotated or mirrored image are the maps rotated or mirrored."""
    image = np.random.default_rng(6).random((64, 64)).astype(np.float32)
    maps = segment(tiny_network, image, device="cpu", tta=True).fine
    for turns, mirrored in ((1, False), (0, True), (3, True)):
        turned = segment(tiny_network, _turned(image, turns, mirrored), device="cpu", tta=True).fine
        np.testing.assert_allclose(turned, _turned(maps, turns, mirrored), atol=1e-5)


def test_tta_keeps_odd_shapes_and_stacks(tiny_network: OctaNet) -> None:
    stack = np.random.default_rng(7).random((3, 45, 70)).astype(np.float32)
    exact = {"device": "cpu", "tta": True, "mixed_precision": False}  # batches of other sizes, same maps
    maps = segment(tiny_network, stack, batch_size=2, **exact)
    assert maps.fine.shape == maps.pixel.shape == maps.centerline.shape == (3, 45, 70)
    np.testing.assert_allclose(maps.fine[1], segment(tiny_network, stack[1], **exact).fine, atol=1e-5)


def test_rgb_is_converted_to_grey(tiny_network: OctaNet) -> None:
    grey = np.random.default_rng(4).integers(0, 255, (64, 64), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    maps = segment(tiny_network, rgb, device="cpu")
    assert maps.fine.shape == (64, 64)
    np.testing.assert_allclose(maps.fine, segment(tiny_network, grey, device="cpu").fine, atol=1e-2)


def test_nan_input_is_refused_with_a_clear_message(tiny_network: OctaNet) -> None:
    image = np.zeros((64, 64), np.float32)
    image[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        segment(tiny_network, image, device="cpu")


def test_colour_array_where_grey_is_expected(tiny_network: OctaNet) -> None:
    with pytest.raises(InputError, match="colour"):
        segment(tiny_network, np.zeros((64, 64, 3), np.uint8), device="cpu", rgb=False)


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (16, 16), (64,)])
def test_bad_shapes_name_the_shape(tiny_network: OctaNet, shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        segment(tiny_network, np.zeros(shape, np.float32), device="cpu")


def test_progress_is_yielded_per_batch(tiny_network: OctaNet) -> None:
    generator = iter_segment(tiny_network, np.zeros((5, 32, 32), np.uint8), device="cpu", batch_size=2)
    events = []
    with pytest.raises(StopIteration) as stop:
        while True:
            events.append(next(generator))
    assert all(isinstance(e, Progress) for e in events)
    assert [e.done for e in events] == [0, 2, 4, 5]
    assert stop.value.value.fine.shape == (5, 32, 32)


def test_progress_counts_every_view_of_test_time_augmentation() -> None:
    generator = iter_segment(EchoNet(), np.zeros((2, 32, 32), np.uint8), device="cpu", batch_size=2, tta=True)
    events = []
    with pytest.raises(StopIteration):
        while True:
            events.append(next(generator))
    assert [e.done for e in events] == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert {e.total for e in events} == {16}
    assert "slices 1-2 of 2: 2 of 16 passes" in events[1].message


def test_a_large_scan_can_be_stopped_between_its_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop (closing the generator, as a cancelled worker does) must not wait for the whole scan."""
    from napari_octanet.core import inference

    monkeypatch.setattr(inference, "MAX_PIXELS_PER_PASS", 128 * 128)
    monkeypatch.setattr(inference, "TILE_SIZE", 128)
    monkeypatch.setattr(inference, "TILE_MARGIN", 16)
    passes: list[int] = []

    class Counting(EchoNet):
        def forward(self, image: torch.Tensor) -> OctaNetOutput:
            passes.append(1)
            return super().forward(image)

    generator = iter_segment(Counting(), np.zeros((300, 250), np.float32), device="cpu")
    start = next(generator)
    first_tile = next(generator)
    generator.close()
    tiles = len(tile_windows(300, 128, 16)) * len(tile_windows(250, 128, 16))
    assert (start.done, start.total) == (0, tiles) and tiles > 4
    assert first_tile.done == 1 and "slice 1 of 1: 1 of" in first_tile.message
    assert len(passes) == 1


@pytest.mark.parametrize("network", [OutOfMemoryAboveOne, MpsOutOfMemoryAboveOne])
def test_out_of_memory_halves_the_batch_and_says_so(network: type[EchoNet]) -> None:
    maps = segment(network(), np.random.default_rng(5).random((4, 32, 32)), device="cpu", batch_size=4)
    assert maps.fine.shape == (4, 32, 32)
    assert any("batches of 2" in note for note in maps.notes)
    assert any("batches of 1" in note for note in maps.notes)


def test_auto_device_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_octanet.core import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    choice = resolve_device("auto")
    assert choice.device.type == "cpu" and "no CUDA or MPS" in choice.reason
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    choice = resolve_device("auto")
    assert choice.device.type == "mps" and "MPS" in choice.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_requested_cuda_without_cuda_is_an_error() -> None:
    with pytest.raises(DeviceError, match="no usable CUDA"):
        resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_stays_close_to_float32(tiny_network: OctaNet) -> None:
    image = np.random.default_rng(6).random((2, 304, 304)).astype(np.float32)
    half = segment(tiny_network, image, device="cuda", mixed_precision=True).fine
    full = segment(tiny_network, image, device="cuda", mixed_precision=False).fine
    assert np.abs(half - full).max() < 1e-2


def test_the_fast_precision_is_float16_on_cuda_and_bfloat16_only_on_cpus_with_amx(monkeypatch) -> None:
    from napari_octanet.core import devices

    monkeypatch.setattr(devices, "_cpu_has_amx", lambda: True)
    assert devices.fast_precision(torch.device("cpu")) == torch.bfloat16
    assert devices.fast_precision(torch.device("cuda")) == torch.float16
    assert devices.fast_precision(torch.device("mps")) is None
    assert devices.precision_name(torch.device("cpu")) == "bfloat16 autocast"
    assert devices.precision_name(torch.device("cpu"), enabled=False) == "float32"
    monkeypatch.setattr(devices, "_cpu_has_amx", lambda: False)
    assert devices.fast_precision(torch.device("cpu")) is None
    assert devices.precision_name(torch.device("cpu")) == "float32"


def _autocast_seen(network: nn.Module) -> list[torch.dtype | None]:
    """What each forward pass of ``network`` (or a copy of it) ran under on the CPU: a dtype or None."""
    seen: list[torch.dtype | None] = []

    def record(module: nn.Module, inputs: object) -> None:
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)

    network.register_forward_pre_hook(record)
    return seen


@pytest.mark.parametrize("amx", [True, False])
def test_cpu_inference_uses_bfloat16_only_with_amx_and_when_allowed(monkeypatch, amx: bool) -> None:
    from napari_octanet.core import devices

    monkeypatch.setattr(devices, "_cpu_has_amx", lambda: amx)
    torch.manual_seed(0)
    network = OctaNet(TINY).eval()
    seen = _autocast_seen(network)
    image = np.random.default_rng(7).random((96, 96)).astype(np.float32)
    fast = segment(network, image, device="cpu")
    full = segment(network, image, device="cpu", mixed_precision=False)
    assert seen == [torch.bfloat16 if amx else None, None]
    assert (fast.precision, full.precision) == ("bfloat16 autocast" if amx else "float32", "float32")
    assert np.abs(fast.fine - full.fine).max() < 0.05


@pytest.mark.parametrize(("augment", "noted"), [("none", True), ("flips", False), ("full", False)])
def test_tta_on_a_model_trained_without_turns_says_it_costs_dice(tmp_path: Path, augment: str, noted: bool) -> None:
    provenance = {"settings": {"augment": asdict(AUGMENTS[augment])}}
    model = load_model(save_checkpoint(tmp_path / "m.safetensors", OctaNet(TINY), provenance=provenance))
    image = synthetic_octa(64, seed=0)[0]
    assert (UNTURNED_TTA_NOTE in segment(model, image, device="cpu", tta=True).notes) is noted
    assert UNTURNED_TTA_NOTE not in segment(model, image, device="cpu").notes
