from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from builders import make_pairs_tree, make_rose1_tree, make_rose2_tree, octa_like, vessel_mask, write_image
from napari_octanet.plugin.reader import get_reader


def layers_by_name(layer_data):
    return {meta["name"]: (data, meta, kind) for data, meta, kind in layer_data}


def read(path):
    reader = get_reader(str(path))
    assert reader is not None, f"no reader for {path}"
    return layers_by_name(reader(str(path)))


def test_foreign_paths_get_no_reader(tmp_path):
    (tmp_path / "notes.txt").write_text("text")
    (tmp_path / "fake.png").write_text("not a png")
    (tmp_path / "photos").mkdir()
    for path in ("notes.txt", "fake.png", "photos", "missing.tif"):
        assert get_reader(str(tmp_path / path)) is None
    image = write_image(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    assert get_reader([str(image), str(image)]) is None


def test_single_rgb_file_becomes_one_grey_image(tmp_path):
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[..., 1] = 200
    path = write_image(tmp_path / "scan.png", rgb)
    (data, meta, kind) = read(path)["scan"]
    assert kind == "image" and data.shape == (20, 24) and data.dtype == np.uint8
    assert meta["metadata"]["files"] == [str(path)]


def test_single_16bit_tiff_keeps_its_dtype(tmp_path):
    path = write_image(tmp_path / "deep.tif", np.full((16, 16), 4000, np.uint16))
    data, _, _ = read(path)["deep"]
    assert data.dtype == np.uint16 and data.max() == 4000


def test_rose1_svc_split_gives_images_and_three_label_kinds(tmp_path):
    rose1 = make_rose1_tree(tmp_path, n=3, size=32, layers=("SVC",))
    layers = read(rose1 / "SVC" / "test")
    assert sorted(layers) == [f"ROSE-1 SVC test{suffix}" for suffix in ("", " gt", " thick_gt", " thin_gt")]
    images, meta, kind = layers["ROSE-1 SVC test"]
    assert kind == "image" and images.shape == (3, 32, 32)
    assert [p.rsplit("/", 2)[-2:] for p in meta["metadata"]["files"]] == [["img", f"0{i}.tif"] for i in (1, 2, 3)]
    thick, thick_meta, thick_kind = layers["ROSE-1 SVC test thick_gt"]
    thin, thin_meta, _ = layers["ROSE-1 SVC test thin_gt"]
    assert thick_kind == "labels" and thick.shape == (3, 32, 32) and thick.dtype == np.uint8
    assert thick_meta["metadata"]["roles"] == ["pixel-level"] and thin_meta["metadata"]["roles"] == ["centerline-level"]
    assert [f.rsplit("/", 1)[-1] for f in thin_meta["metadata"]["files"]] == ["01.tif", "02.tif", "03.tif"]
    assert 0 < thin.sum() < thick.sum()
    assert images[thick.astype(bool)].mean() > images[~thick.astype(bool)].mean()  # aligned slice for slice


def test_rose1_root_gives_every_layer_and_split(tmp_path):
    layers = read(make_rose1_tree(tmp_path, n=1, size=32))
    image_names = sorted(name for name, (_, _, kind) in layers.items() if kind == "image")
    assert image_names == [
        f"ROSE-1 {layer} {split}" for layer in ("DVC", "SVC", "SVC_DVC") for split in ("test", "train")
    ]
    assert "ROSE-1 DVC test gt" in layers and "ROSE-1 DVC test thick_gt" not in layers
    assert layers["ROSE-1 DVC test"][0].shape == (32, 32)  # one image: no stack axis


def test_rose2_gt_is_one_labels_layer_with_both_roles(tmp_path):
    layers = read(make_rose2_tree(tmp_path, n=2, size=32) / "train" / "original")
    assert sorted(layers) == ["ROSE-2 train", "ROSE-2 train gt"]
    assert layers["ROSE-2 train gt"][1]["metadata"]["roles"] == ["full", "centerline-level"]


def test_images_of_different_sizes_get_one_layer_each_never_resized(tmp_path):
    root = make_pairs_tree(tmp_path, n=2, size=32, sets={"mixed": ("val",)})
    mask = vessel_mask(40, 1)
    write_image(root / "mixed" / "val" / "image" / "big.png", octa_like(mask, 1))
    write_image(root / "mixed" / "val" / "label" / "big.png", mask.astype(np.uint8) * 255)
    layers = read(root)
    assert sorted(layers) == ["mixed val 32x32", "mixed val 32x32 label", "mixed val 40x40", "mixed val 40x40 label"]
    assert layers["mixed val 32x32"][0].shape == (2, 32, 32)
    assert layers["mixed val 40x40 label"][1]["metadata"]["files"][0].endswith("big.png")


def test_partnerless_files_are_warned_about(tmp_path):
    root = make_pairs_tree(tmp_path, n=2, size=32, sets={"s": ("train",)})
    write_image(root / "s" / "train" / "image" / "lonely.png", np.zeros((32, 32), np.uint8))
    with pytest.warns(UserWarning, match="lonely.png"):
        layers = read(root)
    assert layers["s train"][0].shape == (2, 32, 32)


def test_napari_opens_a_pairs_tree_through_the_plugin(make_napari_viewer, tmp_path):
    root = make_pairs_tree(tmp_path, n=2, size=32)
    viewer = make_napari_viewer()
    viewer.open(str(root / "ROSSA"), plugin="napari-octanet")
    kinds = {layer.name: type(layer).__name__ for layer in viewer.layers}
    assert kinds == {
        f"ROSSA {split}{suffix}": kind
        for split in ("train_manual", "train_sam", "val")
        for suffix, kind in (("", "Image"), (" label", "Labels"))
    }
    assert viewer.layers["ROSSA val label"].data.shape == (2, 32, 32)


def test_napari_opens_a_single_file_through_the_plugin(make_napari_viewer, tmp_path):
    path = write_image(tmp_path / "scan.tif", np.full((24, 24), 7, np.uint8))
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-octanet")
    assert [layer.name for layer in viewer.layers] == ["scan"]


def test_reading_a_dataset_does_not_import_torch(tmp_path):
    """napari must start fast: the reader stays clear of torch."""
    root = make_pairs_tree(tmp_path, n=1, size=32, sets={"s": ("val",)})
    code = (
        "import sys; from napari_octanet.plugin.reader import get_reader; "
        f"layers = get_reader({str(root)!r})({str(root)!r}); assert len(layers) == 2; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_stack_tiff_opens_as_one_stack_layer(make_napari_viewer, tmp_path):
    import tifffile

    stack = np.random.default_rng(0).integers(0, 255, (4, 32, 40), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")

    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "stack.tif"), plugin="napari-octanet")

    np.testing.assert_array_equal(viewer.layers["stack"].data, stack)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20], ids=["zero bytes", "truncated png"])
def test_unreadable_pngs_are_left_to_other_readers(tmp_path, content):
    (tmp_path / "broken.png").write_bytes(content)
    assert get_reader(str(tmp_path / "broken.png")) is None


def test_a_label_opened_beside_its_image_is_named_after_it(make_napari_viewer, tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    mask = vessel_mask(32, seed=0)
    write_image(tmp_path / "img" / "10202.png", octa_like(mask, seed=0))
    write_image(tmp_path / "gt" / "10202.png", mask.astype(np.uint8) * 255)

    viewer = make_napari_viewer()
    for folder in ("img", "gt"):
        viewer.open(str(tmp_path / folder / "10202.png"), plugin="napari-octanet")

    assert [layer.name for layer in viewer.layers] == ["10202", "10202 labels"]
    assert type(viewer.layers["10202 labels"]).__name__ == "Labels"


def test_an_octa500_3m_folder_gives_its_layers_a_scale_in_um_per_pixel(make_napari_viewer, tmp_path):
    """OCTA-500's 3M set is 3 x 3 mm: a 64-px scan there has pixels of 3000 / 64 µm; other sets state none."""
    root = make_pairs_tree(tmp_path, n=2, size=64, sets={"OCTA500_3M": ("val",), "ROSSA": ("val",)})
    um = 3000 / 64

    folder = read(root / "OCTA500_3M")
    for name in ("OCTA500_3M val", "OCTA500_3M val label"):
        np.testing.assert_allclose(folder[name][1]["scale"], (1.0, um, um))
    _, single, _ = read(root / "OCTA500_3M" / "val" / "image" / "1.png")["1"]
    np.testing.assert_allclose(single["scale"], (um, um))
    assert "scale" not in read(root / "ROSSA")["ROSSA val"][1]

    viewer = make_napari_viewer()
    viewer.open(str(root / "OCTA500_3M" / "val" / "label" / "2.png"), plugin="napari-octanet")
    np.testing.assert_allclose(viewer.layers["2 labels"].scale, (um, um))


def test_a_scan_too_narrow_for_its_folders_field_of_view_gets_no_scale(tmp_path):
    """3 mm over 8 px would be 375 µm per pixel, beyond any OCTA device: no pixel size rather than a wrong one."""
    path = write_image(tmp_path / "OCTA500_3M" / "thumb.png", np.zeros((8, 8), np.uint8))
    assert "scale" not in read(path)["thumb"][1]
