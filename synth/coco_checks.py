"""The checks synth.coco.load_coco applies to every entry of a COCO file, which may come from anyone.

Every field that simreal or pycocotools later touches is type-checked here, so a bad file fails on load
with one line instead of deep inside training or inside pycocotools' C code. Image sizes are bounded
first, and masks are checked against them without decoding anything, because pycocotools allocates and
writes masks at the declared size without bounds checks.
"""

from __future__ import annotations

import math
import os

import numpy as np

from synth.rle import compressed_totals

MAX_IMAGE_SIDE = 20_000  # pixels; larger declared sizes are refused before anything is allocated
MAX_IMAGE_PIXELS = 100_000_000
MAX_OUTLINE_PERIMETERS = 100  # polygon outline length, in image perimeters (bounds pycocotools' memory)
BOX_TOLERANCE_PX = 1.0  # boxes this far outside the image are clipped to it; further out is an error
MAX_ID = 2**63  # ids and numbers must fit int64 / float (numpy, torch and pycocotools arrays)
MASK_KEYS = ("segmentation", "amodal_segmentation")


class CocoProblem(Exception):
    """What is wrong with which entry; load_coco turns it into a CocoError naming the file."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_id(v) -> bool:
    return _is_int(v) and -MAX_ID < v < MAX_ID


def _is_number(v) -> bool:
    """A finite JSON number that converts to float (bools are not numbers; NaN/Infinity parse in Python)."""
    return (_is_int(v) and abs(v) < MAX_ID) or (isinstance(v, float) and math.isfinite(v))


def _is_size(v) -> bool:
    return (_is_int(v) or (isinstance(v, float) and v.is_integer())) and v >= 1


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(what: str, problem: str):
    raise CocoProblem(f"{what}: {problem}")


class EntryChecker:
    """Checks images, then categories, then annotations, remembering the ids seen; ``finish`` checks the
    compressed RLE strings collected on the way, all in one vectorised pass (see synth.rle)."""

    def __init__(self, confined: bool):
        self.confined = confined  # file names must stay inside the set's folder
        self.image_sizes: dict[int, tuple[int, int]] = {}  # id -> (height, width)
        self.category_ids: set[int] = set()
        self.annotation_ids: set[int] = set()
        self.rle_strings: list[tuple[str, str, int]] = []  # (what, counts, height * width)

    def image(self, img) -> None:
        if not isinstance(img, dict) or not all(k in img for k in ("id", "file_name", "width", "height")):
            _fail(f"image entry {_short(img)}", "needs id, file_name, width, height")
        what = f"image {_short(img['id'])}"
        if not _is_id(img["id"]):
            _fail(what, "id must be an integer")
        if img["id"] in self.image_sizes:
            _fail(what, "duplicate image id")
        w, h = img["width"], img["height"]
        if not (_is_size(w) and _is_size(h)):
            _fail(what, f"width and height must be positive integers, got {_short(w)} x {_short(h)}")
        if max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
            _fail(what, f"{w}x{h} pixels is beyond the {MAX_IMAGE_SIDE} px side / 100 Mpx limit")
        self._file_name(what, img["file_name"])
        self.image_sizes[img["id"]] = (int(h), int(w))

    def _file_name(self, what: str, name) -> None:
        if not isinstance(name, str) or not name.strip() or "\0" in name:
            _fail(what, f"file_name must be a non-empty path, got {_short(name)}")
        if not self.confined:
            return
        norm = os.path.normpath(name.replace("\\", "/"))
        if os.path.isabs(norm) or norm == ".." or norm.startswith("../"):
            _fail(what, f"file_name {_short(name)} points outside the dataset folder (pass images_root)")

    def category(self, cat) -> None:
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            _fail(f"category entry {_short(cat)}", "needs id and name")
        what = f"category {_short(cat['id'])}"
        if not _is_id(cat["id"]) or cat["id"] < 1:
            _fail(what, "category ids must be integers >= 1")
        if cat["id"] in self.category_ids:
            _fail(what, "duplicate category id")
        if not isinstance(cat["name"], str):
            _fail(what, f"name must be a string, got {_short(cat['name'])}")
        self.category_ids.add(cat["id"])

    def annotation(self, index: int, ann) -> None:
        """Check one annotation; a box poking out of its image by at most BOX_TOLERANCE_PX is clipped."""
        if not isinstance(ann, dict):
            _fail(f"annotation #{index}", f"must be an object, got {_short(ann)}")
        what = f"annotation {_short(ann['id'])}" if "id" in ann else f"annotation #{index}"
        if not _is_id(ann.get("id")):
            _fail(what, "id must be an integer")
        if ann["id"] in self.annotation_ids:
            _fail(what, "duplicate annotation id")
        image_id, cat_id = ann.get("image_id"), ann.get("category_id")
        if not _is_id(image_id) or image_id not in self.image_sizes:
            _fail(what, f"refers to unknown image_id {_short(image_id)}")
        if _is_int(cat_id) and cat_id == 0:
            _fail(what, "category_id 0 (COCO category ids start at 1)")
        if not _is_id(cat_id) or cat_id not in self.category_ids:
            _fail(what, f"has unknown category_id {_short(cat_id)}")
        for key in ("area", "visibility"):
            if key in ann and not (_is_number(ann[key]) and ann[key] >= 0):
                _fail(what, f"{key} must be a finite number >= 0, got {_short(ann[key])}")
        if ann.get("iscrowd", 0) not in (0, 1):
            _fail(what, f"iscrowd must be 0 or 1, got {_short(ann['iscrowd'])}")
        height, width = self.image_sizes[image_id]
        ann["bbox"] = _bbox(what, ann.get("bbox"), width, height)
        for key in MASK_KEYS:
            self._segmentation(f"{what} {key}", ann.get(key), height, width)
        self.annotation_ids.add(ann["id"])

    def _segmentation(self, what: str, seg, height: int, width: int) -> None:
        if seg is None or (isinstance(seg, list) and not seg):
            return
        if isinstance(seg, list):
            _polygons(what, seg, height, width)
            return
        if not isinstance(seg, dict):
            _fail(what, f"must be polygons or an RLE object, got {_short(seg)}")
        size, counts = seg.get("size"), seg.get("counts")
        if size != [height, width] or not all(_is_int(v) for v in size):
            _fail(what, f"RLE size {_short(size)} is not the image size [{height}, {width}]")
        if isinstance(counts, str):
            self.rle_strings.append((what, counts, height * width))
            return
        if not (isinstance(counts, list) and all(_is_int(v) and 0 <= v <= MAX_IMAGE_PIXELS for v in counts)):
            _fail(what, f"RLE counts {_short(counts)} are not valid run lengths")
        if sum(counts) != height * width:
            _fail(what, f"RLE runs cover {sum(counts)} pixels, not {width}x{height}")

    def finish(self) -> None:
        """Check the compressed RLE strings collected by ``annotation``."""
        if not self.rle_strings:
            return
        totals = compressed_totals([s for _, s, _ in self.rle_strings], MAX_IMAGE_PIXELS)
        for (what, counts, pixels), total in zip(self.rle_strings, totals, strict=True):
            if total < 0:
                _fail(what, f"RLE counts {_short(counts)} are not a valid compressed RLE string")
            if total != pixels:
                _fail(what, f"RLE runs cover {total} pixels, not the image's {pixels}")


def _bbox(what: str, bbox, width: int, height: int) -> list:
    """The box, clipped to the image when it pokes out by at most BOX_TOLERANCE_PX."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        _fail(what, f"bbox must be [x, y, width, height] of finite numbers, got {_short(bbox)}")
    x, y, w, h = bbox
    if w < 0 or h < 0:
        _fail(what, f"bbox {_short(bbox)} has a negative size")
    tol = BOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        _fail(what, f"bbox {_short(bbox)} lies outside the {width}x{height} image")
    if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
        return bbox
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = max(x1, min(x + w, width)), max(y1, min(y + h, height))
    return [x1, y1, x2 - x1, y2 - y1]


def _polygons(what: str, polys: list, height: int, width: int) -> None:
    """Finite coordinates, and an outline short enough to rasterise: pycocotools allocates memory in
    proportion to the summed edge lengths, so a zig-zag of huge edges would exhaust it."""
    length = 0.0
    for poly in polys:
        if not (isinstance(poly, list) and all(_is_number(v) for v in poly)):
            _fail(what, "polygons must be lists of finite coordinates")
        xy = np.asarray(poly[: len(poly) // 2 * 2], dtype=np.float64).reshape(-1, 2)
        with np.errstate(over="ignore", invalid="ignore"):  # huge coordinates: an infinite outline
            length += float(np.abs(xy - np.roll(xy, 1, axis=0)).max(axis=1, initial=0.0).sum())
    if length > MAX_OUTLINE_PERIMETERS * (height + width):
        _fail(what, f"polygon outline of {length:.0f} px is implausibly long for a {width}x{height} image")
