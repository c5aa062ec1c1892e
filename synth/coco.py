"""COCO, the contract between the renderer and everything downstream: read, checked and summarised here only.

``load_coco`` is the one reader. Its files come from users (``simreal evaluate``/``train`` on customer
photos), so it treats them as hostile (synth.coco_checks: types, ids, references, boxes, masks, image sizes
bounded before anything is decoded), and a problem is one ``CocoError`` line naming the file, the
image/annotation id and what is wrong. ``validate_coco`` adds the stricter invariants that datasets simreal
writes always keep; ``summarise`` and ``box_statistics`` are the numbers every report shows of a set.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from synth.coco_checks import CocoProblem, EntryChecker
from synth.errors import SimrealError

COCO_FILE_NAMES = ("annotations.json", "coco.json", "_annotations.coco.json")
SIZE_BINS = (0, 16, 32, 64, 96, 128, 256, 512, 100000)  # sqrt(box area) in pixels; 32/96 = COCO S/M/L


class CocoError(SimrealError):
    """A COCO file that cannot be read or breaks the COCO format."""


class CocoValidationError(CocoError):
    """A COCO file that breaks an invariant every dataset simreal writes keeps (see validate_coco)."""


# ---- the parsed set ---------------------------------------------------------------------------------------
@dataclass
class CocoSource:
    """A parsed, checked COCO annotation file and where its images live."""

    ann_file: Path
    image_root: Path
    dataset: dict
    images: dict[int, dict] = field(default_factory=dict)
    anns_by_image: dict[int, list[dict]] = field(default_factory=dict)
    categories: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A short set name: the dataset folder's name."""
        return self.ann_file.parent.name if self.ann_file.name in COCO_FILE_NAMES else self.ann_file.stem

    @property
    def has_masks(self) -> bool:
        """True when every non-crowd annotation carries a segmentation (polygon or RLE)."""
        anns = [a for _, a in iter_annotations(self)]
        return bool(anns) and all(_has_segmentation(a) for a in anns)

    def image_path(self, image_id: int) -> Path:
        return _resolve_image(self.image_root, self.images[image_id]["file_name"])


def _has_segmentation(ann: dict) -> bool:
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        return any(len(p) >= 6 for p in seg)
    return isinstance(seg, dict) and "counts" in seg and "size" in seg


def _resolve_image(root: Path, file_name: str) -> Path:
    path = root / file_name
    if not path.exists() and (root / "images" / file_name).exists():
        path = root / "images" / file_name
    return path


def iter_annotations(
    source: CocoSource, image_ids: Iterable[int] | None = None, *, crowd: bool = False
) -> Iterator[tuple[dict, dict]]:
    """(image info, annotation) pairs in image id order; crowd regions only when ``crowd``."""
    for image_id in sorted(source.images) if image_ids is None else image_ids:
        info = source.images[image_id]
        for a in source.anns_by_image[image_id]:
            if crowd or not a.get("iscrowd", 0):
                yield info, a


# ---- reading ----------------------------------------------------------------------------------------------
def resolve_coco_path(path: str | Path) -> Path:
    """The annotations file of a dataset folder (annotations.json, coco.json, _annotations.coco.json) or .json."""
    p = Path(path)
    if p.is_dir():
        for name in COCO_FILE_NAMES:
            if (p / name).is_file():
                return p / name
        raise CocoError(
            p,
            f"no {', '.join(COCO_FILE_NAMES)} in this folder (expected a COCO dataset folder or a .json file)",
        )
    if p.is_file() and p.suffix.lower() == ".json":
        return p
    raise CocoError(p, "not found (expected a COCO dataset folder or an annotations .json file)")


def _parse_json(path: Path):
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise CocoError(path, f"cannot read JSON: line {e.lineno}: {e.msg}") from None
    except (OSError, ValueError, RecursionError) as e:
        raise CocoError(path, f"cannot read JSON ({e.__class__.__name__})") from None


def read_coco_json(path: str | Path) -> dict:
    """The parsed JSON object of a COCO file (no checks beyond 'a JSON object')."""
    data = _parse_json(Path(path))
    if not isinstance(data, dict):
        raise CocoError(path, "top level must be an object with images, annotations, categories")
    return data


def read_results(path: str | Path) -> list[dict]:
    """A COCO results file (detections: image_id, category_id, bbox, score), as evaluation writes it."""
    data = _parse_json(Path(path))
    if not isinstance(data, list) or not all(
        isinstance(d, dict) and {"image_id", "bbox", "score"} <= d.keys() for d in data
    ):
        raise CocoError(path, "not a COCO results list (entries need image_id, bbox, score)")
    return data


def load_coco(
    path: str | Path, *, check_files: bool = True, images_root: str | Path | None = None
) -> CocoSource:
    """Parse and check a COCO file; see the module docstring for what is refused.

    Image ``file_name``s must stay inside the set's folder unless ``images_root`` (where the images are)
    is given. Boxes up to 1 px outside their image are clipped to it in ``dataset``."""
    ann_file = resolve_coco_path(path)
    data = read_coco_json(ann_file)
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoError(ann_file, f"missing list '{key}'")
    if not isinstance(data.setdefault("annotations", []), list):
        raise CocoError(ann_file, "'annotations' must be a list")
    root = Path(images_root) if images_root is not None else ann_file.parent
    src = CocoSource(ann_file=ann_file, image_root=root, dataset=data)
    check = EntryChecker(confined=images_root is None)
    try:
        for img in data["images"]:
            check.image(img)
            src.images[img["id"]] = img
            src.anns_by_image[img["id"]] = []
        for cat in data["categories"]:
            check.category(cat)
        src.categories = sorted(data["categories"], key=lambda c: c["id"])
        for k, ann in enumerate(data["annotations"]):
            check.annotation(k, ann)
            src.anns_by_image[ann["image_id"]].append(ann)
        check.finish()
    except CocoProblem as e:
        raise CocoError(ann_file, str(e)) from None
    if check_files:
        _check_files_exist(src)
    return src


def _check_files_exist(src: CocoSource) -> None:
    missing = [i for i, img in src.images.items() if not src.image_path(i).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        name = src.images[missing[0]]["file_name"]
        raise CocoError(
            src.ann_file, f"image {missing[0]}: file {name} does not exist under {src.image_root}{more}"
        )


# ---- masks ------------------------------------------------------------------------------------------------
def segmentation_to_mask(segm: list | dict, height: int, width: int) -> np.ndarray:
    """A COCO polygon list, uncompressed RLE or compressed RLE as a uint8 [H, W] mask."""
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = dict(segm)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle)


def _as_rle(seg: dict) -> dict:
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, *seg["size"])
    counts = seg["counts"]
    return {"size": seg["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


# ---- the strict invariants of simreal's own datasets ----------------------------------------------------
def validate_coco(path: str | Path, check_files: bool = True) -> dict:
    """Check a COCO file against pycocotools and the invariants every simreal dataset keeps.

    On top of load_coco's checks, raises CocoValidationError (one line) on: pycocotools failure, zero-area
    or empty-box annotations, annotations without a segmentation, RLE whose area or box disagrees with
    ``area`` / ``bbox``. Returns counts {"images", "annotations", "categories"}."""
    path = Path(path)
    try:
        src = load_coco(path, check_files=check_files)
    except CocoValidationError:
        raise
    except CocoError as e:
        raise CocoValidationError(e.where, e.problem) from None
    _check_pycocotools(path, src.dataset)
    for _, a in iter_annotations(src, crowd=True):
        _check_strict_annotation(path, a)
    n_anns = sum(len(v) for v in src.anns_by_image.values())
    return {"images": len(src.images), "annotations": n_anns, "categories": len(src.categories)}


def _check_pycocotools(path: Path, data: dict) -> None:
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = data
            coco.createIndex()
    except Exception as e:  # pycocotools asserts / KeyErrors on malformed files
        raise CocoValidationError(
            path, f"pycocotools cannot load it ({e.__class__.__name__}: {str(e)[:80]})"
        ) from None


def _check_strict_annotation(path: Path, a: dict) -> None:
    aid, bbox, seg = a["id"], a["bbox"], a.get("segmentation")

    def fail(problem: str):
        raise CocoValidationError(path, problem)

    if not a.get("area", 0) > 0:
        fail(f"annotation {aid} has zero area")
    if not (bbox[2] > 0 and bbox[3] > 0):
        fail(f"annotation {aid} has an empty bbox {bbox}")
    if not seg:
        fail(f"annotation {aid} has no segmentation")
    if isinstance(seg, dict):
        rle = _as_rle(seg)
        area = int(mask_utils.area(rle))
        if area == 0:
            fail(f"annotation {aid} has an empty mask")
        if area != a["area"]:
            fail(f"annotation {aid}: mask has {area} pixels but area says {a['area']}")
        box = [float(v) for v in mask_utils.toBbox(rle)]
        if any(abs(x - y) > 1e-6 for x, y in zip(box, bbox, strict=True)):
            fail(f"annotation {aid}: bbox {bbox} does not match its mask {box}")


# ---- summaries --------------------------------------------------------------------------------------------
def summarise(source: CocoSource, image_ids: Iterable[int] | None = None) -> dict:
    """What a set contains (plain JSON types): counts per category and per image, box sizes, visibility.

    Crowd regions are counted apart ("crowd") and left out of every other number."""
    ids = sorted(source.images) if image_ids is None else list(image_ids)
    names = {c["id"]: c["name"] for c in source.categories}
    per_category = {c["name"]: 0 for c in source.categories}
    per_image = {i: 0 for i in ids}
    wh, rel, vis = [], [], []
    crowd = 0
    for info, a in iter_annotations(source, ids, crowd=True):
        if a.get("iscrowd", 0):
            crowd += 1
            continue
        per_category[names[a["category_id"]]] += 1
        per_image[a["image_id"]] += 1
        wh.append(a["bbox"][2:4])
        rel.append(a.get("area", a["bbox"][2] * a["bbox"][3]) / (info["width"] * info["height"]))
        if "visibility" in a:
            vis.append(a["visibility"])
    counts = np.array(list(per_image.values()), dtype=np.int64)
    out = {
        "path": str(source.ann_file),
        "images": len(ids),
        "annotations": int(counts.sum()),
        "crowd": crowd,
        "categories": [c["name"] for c in source.categories],
        "per_category": per_category,
        "objects_per_image": _objects_per_image(counts),
        "box_size_px": _box_sizes(np.array(wh, dtype=np.float64).reshape(-1, 2), np.array(rel)),
    }
    if vis:
        out["visibility"] = _visibility(np.array(vis, dtype=np.float64))
    return out


def _objects_per_image(counts: np.ndarray) -> dict:
    return {
        "mean": round(float(counts.mean()), 4) if counts.size else 0.0,
        "median": float(np.median(counts)) if counts.size else 0.0,
        "max": int(counts.max()) if counts.size else 0,
        "histogram": {str(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True), strict=True)},
        "images_without_objects": int((counts == 0).sum()),
    }


def _box_sizes(wh: np.ndarray, area_fraction: np.ndarray) -> dict:
    side = np.sqrt(wh[:, 0] * wh[:, 1])
    hist, _ = np.histogram(side, bins=SIZE_BINS)
    return {
        "sqrt_area_bins": list(SIZE_BINS),
        "histogram": [int(v) for v in hist],
        "coco_small_medium_large": [
            int((side < 32).sum()),
            int(((side >= 32) & (side < 96)).sum()),
            int((side >= 96).sum()),
        ],
        "median_width": float(np.median(wh[:, 0])) if len(wh) else 0.0,
        "median_height": float(np.median(wh[:, 1])) if len(wh) else 0.0,
        "median_area_fraction": float(np.median(area_fraction)) if area_fraction.size else 0.0,
    }


def _visibility(vis: np.ndarray) -> dict:
    hist, edges = np.histogram(vis, bins=10, range=(0.0, 1.0))
    return {
        "mean": round(float(vis.mean()), 4),
        "median": round(float(np.median(vis)), 4),
        "bins": [round(float(e), 2) for e in edges],
        "histogram": [int(v) for v in hist],
    }


def box_statistics(source_or_path: CocoSource | str | Path, detector_size: int | None = None) -> dict:
    """Per box: relative size sqrt(w h / W H), longer side in pixels at the detector's input (the image
    letterboxed so its longer side is ``detector_size``), and log2 aspect (h / w). Crowd boxes are skipped."""
    src = (
        source_or_path
        if isinstance(source_or_path, CocoSource)
        else load_coco(source_or_path, check_files=False)
    )
    rel, px, aspect, per_image = [], [], [], []
    for image_id, info in src.images.items():
        W, H = float(info["width"]), float(info["height"])
        scale = (detector_size / max(W, H)) if detector_size else 1.0
        n = 0
        for a in src.anns_by_image[image_id]:
            w, h = float(a["bbox"][2]), float(a["bbox"][3])
            if a.get("iscrowd", 0) or w <= 0 or h <= 0:
                continue
            rel.append(math.sqrt(w * h / (W * H)))
            px.append(max(w, h) * scale)
            aspect.append(math.log2(h / w))
            n += 1
        per_image.append(n)
    arr = {
        k: np.asarray(v, dtype=np.float64) for k, v in (("relative", rel), ("pixels", px), ("aspect", aspect))
    }

    def q(v):
        return {p: round(float(np.percentile(v, p)), 4) for p in (10, 50, 90)} if len(v) else None

    return {
        "images": len(src.images),
        "boxes": len(rel),
        "boxes_per_image": round(float(np.mean(per_image)), 2) if per_image else 0.0,
        "relative_size": q(arr["relative"]),
        "pixels_at_input": q(arr["pixels"]),
        "log2_aspect": q(arr["aspect"]),
        "_arrays": arr,
    }
