"""synth.coco: finding, reading, checking (hostile files included) and summarising COCO sets."""

from __future__ import annotations

import copy
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from train_fixtures import SHARED

from synth.coco import (
    CocoError,
    CocoSource,
    box_statistics,
    load_coco,
    read_coco_json,
    resolve_coco_path,
    segmentation_to_mask,
    summarise,
)
from synth.rle import compressed_totals, decode_runs

W, H = 20, 16


def _rle(x0: int, y0: int, x1: int, y1: int) -> dict:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return {"size": [H, W], "counts": mask_utils.encode(np.asfortranarray(m))["counts"].decode()}


def base_coco() -> dict:
    """A small valid set: compressed RLE, uncompressed RLE (a crowd region), a polygon, no mask."""
    ann = {"iscrowd": 0, "area": 12.0, "visibility": 0.5}
    return {
        "images": [
            {"id": 1, "file_name": "images/a.png", "width": W, "height": H},
            {"id": 2, "file_name": "b.png", "width": W, "height": H},
        ],
        "categories": [{"id": 1, "name": "box"}, {"id": 3, "name": "can"}],
        "annotations": [
            {
                **ann,
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [2, 3, 4, 3],
                "segmentation": _rle(2, 3, 6, 6),
            },
            {**ann, "id": 2, "image_id": 1, "category_id": 3, "bbox": [0.5, 0.5, 10, 10.5]},
            {
                **ann,
                "id": 3,
                "image_id": 2,
                "category_id": 3,
                "bbox": [1, 1, 5, 5],
                "segmentation": [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0]],
            },
            {
                "id": 4,
                "image_id": 2,
                "category_id": 1,
                "iscrowd": 1,
                "area": 2,
                "bbox": [0, 0, 1, 2],
                "segmentation": {"size": [H, W], "counts": [0, 2, H * W - 2]},
            },
        ],
    }


def write(tmp_path: Path, coco, name: str = "annotations.json") -> Path:
    path = tmp_path / name
    path.write_text(coco if isinstance(coco, str) else json.dumps(coco))
    return path


def changed(edit) -> dict:
    coco = base_coco()
    edit(coco)
    return coco


# ---- finding and reading --------------------------------------------------------------------------------
def test_resolve_finds_the_usual_file_names_and_reading_errors_are_one_line(tmp_path):
    for name in ("annotations.json", "coco.json", "_annotations.coco.json"):
        d = tmp_path / name.replace(".", "_")
        d.mkdir()
        write(d, base_coco(), name)
        assert resolve_coco_path(d) == d / name
        assert load_coco(d, check_files=False).name == d.name
    with pytest.raises(CocoError, match="no annotations.json, coco.json"):
        resolve_coco_path(tmp_path)
    with pytest.raises(CocoError, match="not found"):
        resolve_coco_path(tmp_path / "nope.json")
    with pytest.raises(CocoError, match="cannot read JSON: line 1"):
        read_coco_json(write(tmp_path, "{oops"))
    with pytest.raises(CocoError, match="cannot read JSON"):
        read_coco_json(write(tmp_path, "[" * 100_000 + "]" * 100_000))
    with pytest.raises(CocoError, match="top level must be an object"):
        read_coco_json(write(tmp_path, "[]"))
    with pytest.raises(CocoError, match="missing list 'images'") as e:
        load_coco(write(tmp_path, {"categories": []}))
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)


def test_loads_a_valid_set_and_clips_boxes_within_a_pixel(tmp_path):
    coco = changed(lambda c: c["annotations"][1].update(bbox=[-0.5, 0.5, 21.0, 16.0]))
    src = load_coco(write(tmp_path, coco), check_files=False)
    assert isinstance(src, CocoSource) and sorted(src.images) == [1, 2]
    assert [c["id"] for c in src.categories] == [1, 3] and src.has_masks is False
    assert src.anns_by_image[1][1]["bbox"] == [0, 0.5, 20, 15.5]  # clipped to the 20x16 image
    assert src.anns_by_image[1][0]["bbox"] == [2, 3, 4, 3]  # inside: untouched
    assert src.image_path(2) == tmp_path / "b.png"
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    with pytest.raises(CocoError, match=r"image 2: file b.png does not exist under .*"):
        load_coco(tmp_path)
    (tmp_path / "images" / "b.png").write_bytes(b"")  # found in images/ too
    assert load_coco(tmp_path).image_path(2) == tmp_path / "images" / "b.png"


# ---- hostile files: one line naming the file, the entry and the problem ------------------------------------
def _ann(index: int, **fields):
    return lambda c: c["annotations"][index].update(fields)


HOSTILE = {
    "absolute file name": (
        lambda c: c["images"][0].update(file_name="/etc/passwd"),
        "image 1: file_name '/etc/passwd' points outside the dataset folder",
    ),
    "file name escaping the folder": (
        lambda c: c["images"][1].update(file_name="images/../../secret.png"),
        "image 2: file_name .* points outside",
    ),
    "NaN box": (_ann(0, bbox=[math.nan, 1, 2, 2]), "annotation 1: bbox must be .* finite numbers"),
    "infinite box": (_ann(0, bbox=[1, 1, math.inf, 2]), "annotation 1: bbox must be"),
    "negative box": (_ann(0, bbox=[1, 1, -2, 2]), "annotation 1: bbox .* has a negative size"),
    "box outside the image": (
        _ann(2, bbox=[10, 10, 11.5, 2]),
        r"annotation 3: bbox .* outside the 20x16 image",
    ),
    "box left of the image": (_ann(2, bbox=[-1.5, 0, 2, 2]), "annotation 3: bbox .* outside"),
    "string box": (_ann(0, bbox="1,2,3,4"), "annotation 1: bbox must be"),
    "category id 0 used": (_ann(0, category_id=0), "annotation 1: category_id 0"),
    "category id 0 declared": (
        lambda c: c["categories"].append({"id": 0, "name": "bg"}),
        "category 0: category ids must be integers >= 1",
    ),
    "unknown category": (_ann(1, category_id=2), "annotation 2: has unknown category_id 2"),
    "unknown image": (_ann(1, image_id=9), "annotation 2: refers to unknown image_id 9"),
    "duplicate image id": (lambda c: c["images"].append(dict(c["images"][0])), "image 1: duplicate image id"),
    "duplicate category id": (
        lambda c: c["categories"].append({"id": 3, "name": "other"}),
        "category 3: duplicate category id",
    ),
    "duplicate annotation id": (_ann(2, id=1), "annotation 1: duplicate annotation id"),
    "missing annotation id": (
        lambda c: c["annotations"][1].pop("id"),
        "annotation #1: id must be an integer",
    ),
    "RLE of another size": (
        _ann(0, segmentation={"size": [H + 1, W], "counts": _rle(0, 0, 1, 1)["counts"]}),
        r"annotation 1 segmentation: RLE size \[17, 20\] is not the image size \[16, 20\]",
    ),
    "garbage RLE string": (
        _ann(0, segmentation={"size": [H, W], "counts": "\x01garbage~~"}),
        "annotation 1 segmentation: RLE counts .* not a valid compressed RLE string",
    ),
    "RLE string covering too many pixels": (
        _ann(0, segmentation={"size": [H, W], "counts": "0o1"}),
        "annotation 1 segmentation: RLE .*",
    ),
    "RLE runs of the wrong total": (
        _ann(3, segmentation={"size": [H, W], "counts": [0, 2, 10**6]}),
        "annotation 4 segmentation: RLE runs cover 1000002 pixels",
    ),
    "negative RLE run": (
        _ann(3, segmentation={"size": [H, W], "counts": [5, -3, H * W - 2]}),
        "annotation 4 segmentation: RLE counts .* not valid run lengths",
    ),
    "amodal RLE of another size": (
        _ann(0, amodal_segmentation={"size": [W, H], "counts": "0"}),
        "annotation 1 amodal_segmentation: RLE size",
    ),
    "NaN polygon": (
        _ann(2, segmentation=[[1.0, 1.0, math.nan, 2.0, 3.0, 3.0]]),
        "annotation 3 segmentation: polygons",
    ),
    "zig-zag polygon": (
        _ann(2, segmentation=[[0.0, 0.0, 1e7, 1e7] * 50]),
        "annotation 3 segmentation: polygon outline .* implausibly long",
    ),
    "NaN area": (_ann(0, area=math.nan), "annotation 1: area must be a finite number"),
    "iscrowd 7": (_ann(0, iscrowd=7), "annotation 1: iscrowd must be 0 or 1"),
    "image without size": (lambda c: c["images"][0].pop("width"), "needs id, file_name, width, height"),
    "float image size": (lambda c: c["images"][0].update(width=20.5), "image 1: width and height must be"),
    "huge image": (
        lambda c: c["images"][0].update(width=64000, height=48000),
        "image 1: 64000x48000 pixels is beyond the 20000 px side",
    ),
    "too many pixels": (lambda c: c["images"][0].update(width=15000, height=15000), "100 Mpx limit"),
    "string image id": (lambda c: c["images"][0].update(id="1"), "image '1': id must be an integer"),
    "annotation not an object": (
        lambda c: c["annotations"].append([1, 2]),
        "annotation #4: must be an object",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_with_one_line(tmp_path, case):
    edit, message = HOSTILE[case]
    path = write(tmp_path, changed(edit))
    with pytest.raises(CocoError, match=message) as e:
        load_coco(path, check_files=False)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_files_outside_the_folder_load_with_an_explicit_images_root(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"")
    coco = changed(lambda c: c["images"][0].update(file_name=str(photos / "a.png")))
    coco["images"][1]["file_name"] = "../photos/a.png"
    sets = tmp_path / "sets"
    sets.mkdir()
    path = write(sets, coco)
    with pytest.raises(CocoError, match="points outside"):
        load_coco(path)
    src = load_coco(path, images_root=sets)
    assert src.image_path(1) == photos / "a.png" and src.image_path(2).resolve() == photos / "a.png"


def test_an_absurd_mask_size_fails_fast_without_allocating(tmp_path):
    rle = {"size": [48000, 64000], "counts": "0" * 10}
    coco = changed(lambda c: c["annotations"][0].update(segmentation=rle))
    coco["images"][0].update(width=64000, height=48000)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc: the decoded mask would be 3 GB
    try:
        with pytest.raises(CocoError, match="beyond the 20000 px side"):
            load_coco(write(tmp_path, coco), check_files=False)
        coco["images"][0].update(width=W, height=H)  # a small image whose mask claims the huge size
        with pytest.raises(CocoError, match="RLE size .* is not the image size"):
            load_coco(write(tmp_path, coco), check_files=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB allocated"


def _mutate(rng: np.random.Generator, coco: dict) -> None:
    """One random corruption somewhere in the tree: a deleted key, a value of another type, a NaN or huge
    number, a damaged RLE string."""
    slots = []

    def walk(node):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            slots.append((node, key))
            walk(value)

    walk(coco)
    node, key = slots[rng.integers(len(slots))]
    junk = [None, True, "x", -1, 0, 1, 1e308, math.nan, -math.inf, 10**30, [], {}, [1, 2], "../../x", 48000]
    op = rng.integers(5)
    value = node[key]
    if op == 0 and isinstance(node, dict):
        del node[key]
    elif op == 1 and isinstance(value, str):
        chars = list(value)
        for _ in range(rng.integers(1, 4)):
            if chars:
                chars[rng.integers(len(chars))] = chr(int(rng.integers(0, 130)))
        node[key] = "".join(chars[: rng.integers(len(chars) + 1)] if rng.random() < 0.3 else chars)
    elif op == 2 and isinstance(value, int | float) and not isinstance(value, bool):
        node[key] = value * float(rng.choice([-1, 0.5, 1.5, 1e6])) + float(rng.choice([0, 1, -1]))
    elif op == 3 and isinstance(value, list | dict):
        node[key] = list(value.values()) if isinstance(value, dict) else dict(enumerate(value))
    else:
        node[key] = copy.deepcopy(junk[rng.integers(len(junk))])


def _use(src: CocoSource) -> None:
    """What training, evaluation and the reports do with a loaded set: none of it may fail."""
    summarise(src)
    box_statistics(src, 320)
    for image_id, anns in src.anns_by_image.items():
        info = src.images[image_id]
        for a in anns:
            for key in ("segmentation", "amodal_segmentation"):
                if a.get(key):
                    m = segmentation_to_mask(a[key], int(info["height"]), int(info["width"]))
                    assert m.shape == (int(info["height"]), int(info["width"]))


@pytest.mark.timeout(300)  # a hang guard: no mutation may stall the loader (about a second)
def test_fuzzed_files_either_load_or_raise_coco_error(tmp_path):
    rng = np.random.default_rng(20240601)
    base = base_coco()
    base["annotations"][1]["amodal_segmentation"] = _rle(0, 0, 10, 11)
    loaded = refused = 0
    for k in range(400):
        coco = copy.deepcopy(base)
        for _ in range(rng.integers(1, 4)):
            _mutate(rng, coco)
        path = write(tmp_path, coco, f"fuzz{k % 10}.json")
        try:
            src = load_coco(path, check_files=False)
        except CocoError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        _use(src)
        loaded += 1
    assert loaded > 20 and refused > 100  # the mutations reach both outcomes


# ---- compressed RLE strings ---------------------------------------------------------------------------------
def test_compressed_rle_runs_match_pycocotools():
    rng = np.random.default_rng(1)
    masks = [
        (rng.random((int(h), int(w))) < p).astype(np.uint8)
        for h, w, p in rng.integers(1, 60, (40, 3)) / [1, 1, 60]
    ]
    masks += [np.zeros((5, 7), np.uint8), np.ones((300, 200), np.uint8)]
    strings = [mask_utils.encode(np.asfortranarray(m))["counts"].decode() for m in masks]
    runs, owner, valid = decode_runs(strings + ["x~", "P"], max_run=10**8)
    assert valid.tolist() == [True] * len(masks) + [False, False]
    for i, m in enumerate(masks):
        r = runs[owner == i]
        flat = np.repeat(np.arange(len(r)) % 2, r).astype(np.uint8)
        assert np.array_equal(flat.reshape(m.shape[1], m.shape[0]).T, m)
    assert compressed_totals(strings[-1:] + ["", "é"], 10**8).tolist() == [60000, 0, -1]


# ---- summaries ----------------------------------------------------------------------------------------------
def test_summarise_counts_crowd_apart(tmp_path):
    src = load_coco(write(tmp_path, base_coco()), check_files=False)
    s = summarise(src)
    assert s["path"] == str(tmp_path / "annotations.json")
    assert (s["images"], s["annotations"], s["crowd"]) == (2, 3, 1)
    assert s["categories"] == ["box", "can"] and s["per_category"] == {"box": 1, "can": 2}
    assert s["objects_per_image"] == {
        "mean": 1.5,
        "median": 1.5,
        "max": 2,
        "histogram": {"1": 1, "2": 1},
        "images_without_objects": 0,
    }
    assert s["box_size_px"]["histogram"][0] == 3  # sqrt areas 3.5, 10.2, 5: crowd left out
    assert s["visibility"]["mean"] == 0.5 and sum(s["visibility"]["histogram"]) == 3
    only_2 = summarise(src, [2])
    assert (only_2["images"], only_2["annotations"], only_2["crowd"]) == (1, 1, 1)
    assert json.loads(json.dumps(s)) == s  # plain JSON types


def test_box_statistics_take_a_source_or_a_path(tmp_path):
    path = write(tmp_path, base_coco())
    a, b = box_statistics(path, 40), box_statistics(load_coco(path, check_files=False), 40)
    assert a["boxes"] == b["boxes"] == 3 and a["pixels_at_input"] == b["pixels_at_input"]
    assert a["_arrays"]["pixels"].max() == pytest.approx(21.0)  # 10.5 px at 20 px -> 40 px input


@pytest.mark.skipif(not (SHARED / "real").is_dir(), reason="needs ../shared/real")
def test_the_shared_real_sets_load_and_summarise():
    sets = sorted(p for p in (SHARED / "real").glob("*/*") if p.is_dir())
    assert sets
    for d in sets:
        src = load_coco(d)  # every image file present, every entry valid
        s = summarise(src)
        assert s["images"] == len(src.images) > 0 and s["annotations"] > 0
        _use(src)
