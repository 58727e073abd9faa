from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from builders import write_image
from napari_octanet.core.imageio import IMAGE_SUFFIXES, ImageReadError, looks_like_image, read_image, read_label


@pytest.mark.parametrize("suffix", [".tif", ".png"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_image_round_trips_with_its_dtype(tmp_path, suffix, dtype):
    array = (np.arange(20 * 30).reshape(20, 30) * 37 % np.iinfo(dtype).max).astype(dtype)
    path = write_image(tmp_path / f"grey{suffix}", array)
    image = read_image(path)
    assert image.dtype == dtype
    np.testing.assert_array_equal(image, array)


def test_float_tiff_keeps_float(tmp_path):
    array = np.linspace(0, 1, 12 * 14, dtype=np.float32).reshape(12, 14)
    image = read_image(write_image(tmp_path / "f.tif", array))
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, array)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_rgb_becomes_grey_in_the_input_dtype(tmp_path, suffix):
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    image = read_image(write_image(tmp_path / f"rgb{suffix}", rgb))
    assert image.shape == (10, 12)
    assert image.dtype == np.uint8
    assert np.all(image == round(0.299 * 100 + 0.587 * 200 + 0.114 * 50))


def test_rgba_ignores_alpha(tmp_path):
    rgba = np.full((8, 9, 4), 80, dtype=np.uint8)
    rgba[..., 3] = 0
    assert np.all(read_image(write_image(tmp_path / "rgba.png", rgba)) == 80)


def test_planar_rgb_tiff_from_another_program_is_read_as_colour_with_a_warning(tmp_path):
    planar = np.zeros((3, 16, 18), dtype=np.uint16)
    planar[1] = 1000
    path = tmp_path / "planar.tif"
    # metadata=None: no tifffile shape record, as a file from another program
    tifffile.imwrite(path, planar, photometric="rgb", planarconfig="separate", metadata=None)
    with pytest.warns(UserWarning, match=r"planar\.tif: read as one colour image"):
        image = read_image(path)
    assert image.shape == (16, 18)
    assert np.all(image == round(0.587 * 1000))


@pytest.mark.parametrize("slices", [3, 4])
def test_a_tifffile_stack_of_three_or_four_slices_is_a_stack_not_one_grey_image(tmp_path, slices):
    """tifffile stores any (3|4, H, W) array as planar RGB(A) by default; it used to be merged into one grey image."""
    path = tmp_path / "stack.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # tifffile's own note on this default
        tifffile.imwrite(path, np.zeros((slices, 6, 7), dtype=np.uint8))
    with pytest.raises(
        ImageReadError, match=rf"stack\.tif: read as a stack of slices, shape \({slices}, 6, 7\).*planar RGB"
    ):
        read_image(path)
    with pytest.raises(ImageReadError, match="stack of slices"):
        read_label(path)


@pytest.mark.parametrize(
    ("options", "axes"),
    [
        ({"imagej": True}, "CYX"),
        ({"photometric": "minisblack"}, "QYX"),
        ({"photometric": "minisblack", "metadata": None}, "IYX"),
    ],
)
def test_imagej_and_page_stacks_of_three_slices_are_stacks(tmp_path, options, axes):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.zeros((3, 6, 7), dtype=np.uint8), **options)
    with pytest.raises(ImageReadError, match=rf"stack of slices, shape \(3, 6, 7\) \(its tags give the axes {axes}\)"):
        read_image(path)


@pytest.mark.parametrize("samples", [3, 4])
def test_interleaved_rgb_tiff_is_colour_without_a_warning(tmp_path, samples):
    rgb = np.full((6, 7, samples), 90, dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(read_image(path) == 90)


def test_leading_singleton_axis_is_squeezed(tmp_path):
    array = np.arange(1 * 6 * 7, dtype=np.uint8).reshape(1, 6, 7)
    assert read_image(write_image(tmp_path / "one.tif", array)).shape == (6, 7)


def test_stack_is_refused_with_shape_in_message(tmp_path):
    path = write_image(tmp_path / "stack.tif", np.zeros((5, 6, 7), dtype=np.uint8))
    with pytest.raises(ImageReadError, match=r"stack\.tif.*\(5, 6, 7\).*save each slice as its own file"):
        read_image(path)


def test_corrupt_and_missing_and_foreign_files_name_the_file(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(corrupt)
    with pytest.raises(ImageReadError, match="missing.tif.*no such file"):
        read_image(tmp_path / "missing.tif")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageReadError, match="notes.txt.*unsupported file type"):
        read_label(text)
    fake_tiff = tmp_path / "fake.tif"
    fake_tiff.write_text("not a tiff")
    with pytest.raises(ImageReadError, match="fake.tif.*TIFF"):
        read_image(fake_tiff)


def test_looks_like_image_checks_suffix_and_signature(tmp_path):
    good = write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    renamed = tmp_path / "b.tif"
    renamed.write_text("plain text")
    other = tmp_path / "c.txt"
    other.write_bytes(good.read_bytes())
    assert looks_like_image(good)
    assert not looks_like_image(renamed)
    assert not looks_like_image(other)
    assert ".jpeg" in IMAGE_SUFFIXES


def test_8bit_label_is_binarised_at_128(tmp_path):
    values = np.array([[0, 127, 128, 255]], dtype=np.uint8).repeat(3, axis=0)
    label = read_label(write_image(tmp_path / "l.png", values))
    assert label.dtype == bool
    np.testing.assert_array_equal(label[0], [False, False, True, True])


def test_0_1_label_and_16bit_label_use_nonzero(tmp_path):
    zero_one = np.array([[0, 1, 1, 0]], dtype=np.uint8).repeat(2, axis=0)
    np.testing.assert_array_equal(read_label(write_image(tmp_path / "z.png", zero_one))[0], [0, 1, 1, 0])
    wide = np.array([[0, 1, 300, 0]], dtype=np.uint16).repeat(2, axis=0)
    np.testing.assert_array_equal(read_label(write_image(tmp_path / "w.tif", wide))[0], [0, 1, 1, 0])


def test_rgb_label_takes_any_channel_and_not_alpha(tmp_path):
    rgba = np.zeros((2, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[0, 1, 0] = 255  # red vessel
    rgba[0, 2, 2] = 200  # blue vessel
    rgba[0, 3, 1] = 100  # below 128
    label = read_label(write_image(tmp_path / "rgb_label.png", rgba))
    np.testing.assert_array_equal(label[0], [False, True, True, False])
    assert not label[1].any()


@pytest.mark.parametrize(("content", "reason"), [(b"", "the file is empty"), (b"hello", "not a .png image")])
def test_a_png_that_is_no_image_says_so_without_suggesting_plugins(tmp_path, content: bytes, reason: str) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as error:
        read_image(path)
    assert str(path) in str(error.value) and reason in str(error.value) and "pip install" not in str(error.value)


def _deny_reading(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Opening ``denied`` fails as a file without read permission does (chmod would not stop root)."""
    real_open = Path.open

    def fake_open(self: Path, *args, **kwargs):
        if self == denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fake_open)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_file_without_read_permission_says_permission_denied(tmp_path, monkeypatch, suffix):
    path = write_image(tmp_path / f"scan{suffix}", np.zeros((4, 4), np.uint8))
    _deny_reading(monkeypatch, path)
    with pytest.raises(ImageReadError, match=rf"scan\{suffix}: permission denied; make the file readable"):
        read_image(path)
    assert not looks_like_image(path)
