"""train.data: targets from a loaded COCO set, category mapping, target-domain images, data order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_fixtures import make_image_folder, make_shapes_coco

from synth.coco import CocoError, load_coco, segmentation_to_mask
from train.data import (
    CocoDetection,
    DataError,
    StepBatchSampler,
    UnlabelledImages,
    build_label_map,
    dataset_summary,
    masks_to_boxes,
    normalize_name,
    split_image_ids,
)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_coco(tmp_path_factory.mktemp("shapes"), n_images=6, size=(80, 60), seed=3)


def test_targets_match_annotations_and_letterbox(shapes):
    src = load_coco(shapes)
    lm = build_label_map(src.categories)
    raw = CocoDetection(src, lm)
    boxed = CocoDetection(src, lm, image_size=40)  # 80x60 -> 40x30 padded to 40x40
    for i in range(len(raw)):
        image, t = raw[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 60, 80)
        anns = src.anns_by_image[t["image_id"]]
        assert t["labels"].tolist() == [a["category_id"] for a in anns]  # dataset mode keeps id order 1..K
        # fixture boxes are the masks' tight boxes, exactly
        assert torch.equal(masks_to_boxes(t["masks"]), t["boxes"])
        assert t["masks"].flatten(1).sum(1).tolist() == [a["area"] for a in anns]
        image2, t2 = boxed[i]
        assert image2.shape == (3, 40, 40) and t2["scale"] == pytest.approx(0.5)
        assert image2[:, 30:, :].sum() == 0  # padding at the bottom
        assert torch.allclose(t2["boxes"], t["boxes"] * 0.5)
        # nearest-resized masks still agree with the scaled boxes within a pixel
        assert (masks_to_boxes(t2["masks"]) - t2["boxes"]).abs().max() <= 1.0


def test_polygon_and_uncompressed_rle_decode():
    poly = [[2.0, 2.0, 8.0, 2.0, 8.0, 6.0, 2.0, 6.0]]
    m = segmentation_to_mask(poly, 10, 12)
    assert m.shape == (10, 12) and 20 <= m.sum() <= 35
    # uncompressed RLE (column-major runs), as ycbv_sample stores it: 3 zeros, 4 ones, rest zeros
    rle = {"size": [4, 3], "counts": [3, 4, 5]}
    m2 = segmentation_to_mask(rle, 4, 3)
    assert m2[:, 0].tolist() == [0, 0, 0, 1] and m2[:, 1].tolist() == [1, 1, 1, 0] and m2[:, 2].sum() == 0


def test_bad_files_are_one_line_errors(tmp_path, shapes):
    with pytest.raises(CocoError, match="no annotations.json"):
        load_coco(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CocoError, match="cannot read JSON: line 1"):
        load_coco(bad)
    data = json.loads((shapes / "annotations.json").read_text())
    data["annotations"][0]["category_id"] = 99
    ref = shapes.parent / "ref.json"
    ref.write_text(json.dumps(data))
    with pytest.raises(CocoError, match="unknown category_id 99"):
        load_coco(ref, check_files=False)
    data = json.loads((shapes / "annotations.json").read_text())
    data["images"][0]["file_name"] = "images/missing.png"
    (shapes / "missing.json").write_text(json.dumps(data))
    with pytest.raises(CocoError, match="image 1: file images/missing.png does not exist") as e:
        load_coco(shapes / "missing.json")
    assert "\n" not in str(e.value)


def test_label_maps():
    cats = [{"id": 1, "name": "002_master_chef_can"}, {"id": 5, "name": "Mug"}, {"id": 7, "name": "bowl"}]
    assert normalize_name("002_master_chef_can") == normalize_name("Master Chef-Can") == "master_chef_can"
    ds = build_label_map(cats)
    assert ds.class_names == ("002_master_chef_can", "Mug", "bowl") and ds.category_to_label == {
        1: 1,
        5: 2,
        7: 3,
    }
    by_name = build_label_map(cats, class_names=["mug", "master chef can"])
    assert by_name.category_to_label == {1: 2, 5: 1} and by_name.unmapped == ("bowl",)
    agn = build_label_map(cats, class_agnostic="product")
    assert agn.class_names == ("product",) and set(agn.category_to_label.values()) == {1}
    mapped = build_label_map(cats, category_map={"002_master_chef_can": "can", "mug": "cup", "bowl": None})
    assert mapped.class_names == ("can", "cup") and mapped.category_to_label == {1: 1, 5: 2}
    assert mapped.unmapped == ("bowl",)
    with pytest.raises(DataError, match="no entry for dataset category 'bowl'"):
        build_label_map(cats, category_map={"002_master_chef_can": "can", "mug": "cup"})
    with pytest.raises(DataError, match="--class-agnostic or --category-map"):
        build_label_map(cats, class_names=["screw"])
    with pytest.raises(DataError, match="not a class of the model"):
        build_label_map(cats, class_names=["can"], category_map={"mug": "cup"})


def test_category_map_file(tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("box: product\ndisc: product\n")
    lm = build_label_map([{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}], category_map=f)
    assert lm.class_names == ("product",) and lm.category_to_label == {1: 1, 2: 1}
    f.write_text("box: 3\n")
    with pytest.raises(DataError, match="must map to a class name or null"):
        build_label_map([{"id": 1, "name": "box"}], category_map=f)


def test_split_is_deterministic_and_disjoint():
    ids = list(range(1, 51))
    a = split_image_ids(ids, 0.2, seed=4)
    assert a == split_image_ids(list(reversed(ids)), 0.2, seed=4)
    assert len(a[1]) == 10 and not set(a[0]) & set(a[1]) and sorted(a[0] + a[1]) == ids
    assert split_image_ids(ids, 0.2, seed=5) != a
    assert split_image_ids(ids, 0.0, seed=4) == (ids, [])
    assert split_image_ids(ids, 0.2, seed=4, fold=0) == a
    held_out = [i for k in range(5) for i in split_image_ids(ids, 0.2, seed=4, fold=k)[1]]
    assert sorted(held_out) == ids  # five disjoint folds cover every id once
    with pytest.raises(ValueError, match="fold 5 is out of range"):
        split_image_ids(ids, 0.2, seed=4, fold=5)


def test_step_sampler_same_global_batches_for_any_world_size_and_resume():
    one = list(StepBatchSampler(10, 4, steps=7, seed=1))
    two = [list(StepBatchSampler(10, 2, steps=7, world_size=2, rank=r, seed=1)) for r in range(2)]
    for step in range(7):
        assert sorted(one[step]) == sorted(two[0][step] + two[1][step])
    # every epoch is a permutation: steps 0..4 (20 samples) cover each index exactly twice
    counts = np.bincount(np.concatenate(one[:5]), minlength=10)
    assert counts.tolist() == [2] * 10
    assert list(StepBatchSampler(10, 4, steps=7, seed=1, start_step=3)) == one[3:]
    assert len(StepBatchSampler(10, 4, steps=7, seed=1, start_step=3)) == 4


def test_unlabelled_images_folder_and_summary(tmp_path, shapes):
    folder = make_image_folder(tmp_path / "photos", n_images=3, size=50)
    ds = UnlabelledImages(folder, image_size=32)
    assert len(ds) == 3 and ds[0].shape == (3, 32, 32) and ds[0].dtype == torch.uint8
    assert len(UnlabelledImages(shapes, image_size=32)) == 6  # a COCO set works too (labels ignored)
    with pytest.raises(DataError, match="no images"):
        UnlabelledImages(_empty(tmp_path), image_size=32)
    src = load_coco(shapes)
    s = dataset_summary(src, build_label_map(src.categories))
    assert s["images"] == 6 and s["instances"] == len(src.dataset["annotations"]) and s["has_masks"]
    assert sum(s["instances_per_class"].values()) == s["instances"]


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("no images here")
    return d
