from __future__ import annotations

import numpy as np
import pytest

from builders import make_pairs_tree, make_rose1_tree, make_rose2_tree, octa_like, vessel_mask, write_image
from napari_octanet.core.centerline import centerline_from_label
from napari_octanet.core.imageio import ImageReadError
from napari_octanet.core.layouts import (
    DatasetIndex,
    LayoutError,
    Sample,
    detect_layout,
    index_dataset,
    layouts_present,
    load_sample,
    split_folder_of,
)


@pytest.fixture
def rose1(tmp_path):
    return make_rose1_tree(tmp_path)


@pytest.fixture
def rose2(tmp_path):
    return make_rose2_tree(tmp_path)


@pytest.fixture
def pairs(tmp_path):
    return make_pairs_tree(tmp_path / "octa-dev")


@pytest.mark.parametrize("level", ["", "SVC", "SVC/test", "SVC/test/img", "DVC/train/gt"])
def test_rose1_is_detected_at_every_level(rose1, level):
    assert detect_layout(rose1 / level) == "rose1"


@pytest.mark.parametrize("level", ["", "test", "test/original"])
def test_rose2_is_detected_at_every_level(rose2, level):
    assert detect_layout(rose2 / level) == "rose2"


@pytest.mark.parametrize("level", ["", "ROSSA", "ROSSA/train_sam", "OCTA500_3M/val/image"])
def test_pairs_are_detected_at_every_level(pairs, level):
    assert detect_layout(pairs / level) == "pairs"


def test_detection_of_a_foreign_folder_describes_the_layouts(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(LayoutError, match="(?s)rose1:.*rose2:.*pairs:"):
        detect_layout(tmp_path / "photos")
    with pytest.raises(LayoutError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")
    assert layouts_present(tmp_path / "photos") == ()


def test_mixed_layouts_need_an_explicit_choice(tmp_path):
    make_rose1_tree(tmp_path, layers=("DVC",))
    make_rose2_tree(tmp_path)
    assert layouts_present(tmp_path) == ("rose1", "rose2")
    with pytest.raises(LayoutError, match="several layouts"):
        detect_layout(tmp_path)
    assert index_dataset(tmp_path, layout="rose2").layout == "rose2"


def test_rose1_roles_per_layer(rose1):
    index = index_dataset(rose1)
    assert index.layout == "rose1"
    assert list(index.groups()) == [
        f"ROSE-1/{layer}/{split}" for layer in ("DVC", "SVC", "SVC_DVC") for split in ("test", "train")
    ]
    assert len(index.samples) == 12
    assert not index.unpaired and not index.unreadable
    svc = index.groups()["ROSE-1/SVC/test"][0]
    roles = (svc.label, svc.pixel_label, svc.centerline_label)
    assert [path.parent.name for path in roles] == ["gt", "thick_gt", "thin_gt"]
    assert svc.image.parent.name == "img" and svc.stem == "01" and svc.image.name == "01.tif"
    dvc = index.groups()["ROSE-1/DVC/train"][0]
    assert dvc.label == dvc.pixel_label and dvc.label.parent.name == "gt"
    assert dvc.centerline_label is None


def test_rose2_and_pairs_roles(rose2, pairs):
    sample = index_dataset(rose2, split="test").samples[0]
    assert sample.group == "ROSE-2/test"
    assert sample.label == sample.centerline_label and sample.pixel_label is None
    sample = index_dataset(pairs / "OCTA500_3M").samples[0]
    assert sample.label == sample.pixel_label and sample.centerline_label is None
    assert sample.group == "OCTA500_3M/train"


def test_split_matches_exact_name_or_prefix_with_underscore(pairs):
    groups = index_dataset(pairs, split="train").groups()
    assert sorted(groups) == ["OCTA500_3M/train", "ROSSA/train_manual", "ROSSA/train_sam"]
    assert sorted(index_dataset(pairs, split="val").groups()) == ["OCTA500_3M/val", "ROSSA/val"]
    with pytest.raises(LayoutError, match=r"split tra\b"):
        index_dataset(pairs, split="tra")


def test_a_split_not_there_lists_the_split_folders_that_are(pairs):
    with pytest.raises(
        LayoutError, match=r"no split folder named 'test' in .*OCTA500_3M.*folders there are: train, val"
    ):
        index_dataset(pairs / "OCTA500_3M", split="test")
    with pytest.raises(LayoutError, match=r"folders there are: val\b"):
        index_dataset(pairs / "OCTA500_3M" / "val", split="test")


def test_a_split_folder_or_a_folder_in_it_stands_for_its_split(pairs, rose1):
    from napari_octanet.core.evaluation import DEFAULT_SPLIT, split_to_score

    val = pairs / "OCTA500_3M" / "val"
    assert split_folder_of(val) == split_folder_of(val / "image") == val.resolve()
    assert split_folder_of(pairs / "OCTA500_3M") is None and split_folder_of(rose1 / "SVC") is None
    assert split_to_score(val / "label", None) == "val" and split_to_score(pairs, None) == DEFAULT_SPLIT
    assert split_to_score(val, "train") == "train"
    assert list(index_dataset(val, split=split_to_score(val, None)).groups()) == ["OCTA500_3M/val"]


def test_index_from_an_image_folder_covers_its_split(rose1):
    index = index_dataset(rose1 / "SVC" / "test" / "img")
    assert list(index.groups()) == ["ROSE-1/SVC/test"]


def test_pairing_is_by_stem_and_partnerless_files_are_reported(tmp_path):
    split = tmp_path / "set" / "train"
    mask = vessel_mask(32, 0)
    for stem in ("10", "2", "3"):
        write_image(split / "image" / f"{stem}.png", octa_like(mask, 0))
    for stem in ("2", "10", "7"):
        write_image(split / "label" / f"{stem}.png", mask.astype(np.uint8) * 255)
    (split / "image" / "notes.txt").write_text("not an image")
    (split / "label" / "broken.png").write_text("not a png")
    (split / "image" / ".DS_Store").write_text("hidden")
    index = index_dataset(tmp_path)
    assert [s.stem for s in index.samples] == ["2", "10"]  # natural order
    assert all(s.image.stem == s.label.stem for s in index.samples)
    assert sorted(p.name for p in index.unpaired) == ["3.png", "7.png"]
    assert sorted(p.name for p in index.unreadable) == ["broken.png", "notes.txt"]
    report = index.report()
    for name in ("3.png", "7.png", "broken.png", "notes.txt", "set/train: 2 sample(s)"):
        assert name in report
    assert ".DS_Store" not in report


def test_svc_image_missing_thin_label_is_unpaired(rose1):
    (rose1 / "SVC" / "train" / "thin_gt" / "02.tif").unlink()
    index = index_dataset(rose1 / "SVC" / "train")
    assert [s.stem for s in index.samples] == ["01"]
    assert sorted(p.parent.name for p in index.unpaired) == ["gt", "img", "thick_gt"]


def test_no_samples_names_root_layout_split_and_the_cause(tmp_path):
    split = tmp_path / "set" / "val"
    write_image(split / "image" / "a.png", np.zeros((8, 8), np.uint8))
    write_image(split / "label" / "a_mask.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(LayoutError, match=r"layout pairs, split all\).*without a partner.*a_mask\.png"):
        index_dataset(tmp_path)
    with pytest.raises(LayoutError, match="layout rose2"):
        index_dataset(tmp_path, layout="rose2")
    with pytest.raises(LayoutError, match="unknown layout 'rose3'"):
        index_dataset(tmp_path, layout="rose3")


def test_duplicate_stems_are_an_error(tmp_path):
    make_pairs_tree(tmp_path, n=1, sets={"s": ("train",)})
    write_image(tmp_path / "s" / "train" / "image" / "1.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(LayoutError, match="share the stem '1'"):
        index_dataset(tmp_path)


def test_load_sample_reads_and_derives_labels(rose1, rose2, pairs):
    svc = load_sample(index_dataset(rose1 / "SVC" / "test").samples[0])
    assert svc.image.dtype == np.uint8 and svc.image.shape == (64, 64)
    assert svc.pixel_label.dtype == bool and svc.centerline_label.dtype == bool
    assert svc.centerline_label.sum() < svc.pixel_label.sum() <= svc.label.sum()

    pair = load_sample(index_dataset(pairs / "ROSSA" / "val").samples[0])
    np.testing.assert_array_equal(pair.pixel_label, pair.label)
    np.testing.assert_array_equal(pair.centerline_label, centerline_from_label(pair.label))

    rose2_sample = load_sample(index_dataset(rose2).samples[0])
    np.testing.assert_array_equal(rose2_sample.pixel_label, rose2_sample.centerline_label)
    assert rose2_sample.pixel_label.any()


def test_load_sample_refuses_shape_mismatch_naming_shapes_and_files(pairs):
    sample = index_dataset(pairs / "ROSSA" / "val").samples[0]
    write_image(sample.label, np.zeros((40, 50), np.uint8))
    with pytest.raises(LayoutError, match=r"label .*1\.png.*\(40, 50\).*image .*1\.png.*\(64, 64\)"):
        load_sample(sample)


def test_load_sample_names_an_unreadable_file(tmp_path):
    image = write_image(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    broken = tmp_path / "b.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    sample = Sample("a", image, broken, broken, None, "g")
    with pytest.raises(ImageReadError, match="b.png"):
        load_sample(sample)


def test_dataset_index_groups_keep_order():
    samples = [Sample(s, None, None, None, None, g) for s, g in (("1", "b"), ("2", "a"), ("3", "b"))]
    index = DatasetIndex(root=None, layout="pairs", split=None, samples=samples, unpaired=[], unreadable=[])
    assert {g: [s.stem for s in ss] for g, ss in index.groups().items()} == {"b": ["1", "3"], "a": ["2"]}
