"""COCO datasets as torchvision detection targets, category mapping, target-domain images, splits.

COCO is the only contract with the renderer: everything here works the same on a customer's real
labelled photos. A dataset is a folder holding ``annotations.json`` (file names relative to that folder,
e.g. ``images/0001.jpg``) or the path of an annotations ``.json`` file.

Images are decoded in DataLoader workers and letterboxed (scaled so the longer side is ``image_size``,
padded at the bottom/right) to one square size, so a batch stacks into one tensor that kornia can
augment on the device in one call. Loading has no randomness: augmentation happens later on the device,
so the data order alone (``StepBatchSampler``) decides what a step sees, for any number of workers or
processes.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset, Sampler

from synth.config import read_yaml
from synth.errors import SimrealError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class DataError(SimrealError):
    """A dataset, image folder or category map that cannot be used."""


# ---- COCO files ------------------------------------------------------------------------------------
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
        return self.ann_file.parent.name if self.ann_file.name == "annotations.json" else self.ann_file.stem

    @property
    def has_masks(self) -> bool:
        """True when every non-crowd annotation carries a segmentation (polygon or RLE)."""
        anns = [a for lst in self.anns_by_image.values() for a in lst if not a.get("iscrowd", 0)]
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


def resolve_coco_path(path: str | Path) -> Path:
    """The annotations file of a dataset folder or .json path."""
    p = Path(path)
    if p.is_dir():
        ann = p / "annotations.json"
        if not ann.is_file():
            raise DataError(
                p, "no annotations.json in this folder (expected a COCO dataset folder or a .json file)"
            )
        return ann
    if p.is_file() and p.suffix.lower() == ".json":
        return p
    raise DataError(p, "not found (expected a COCO dataset folder or an annotations .json file)")


def load_coco(path: str | Path, *, check_files: bool = True) -> CocoSource:
    """Parse and check a COCO file: ids unique, references resolvable, boxes well-formed, images present."""
    ann_file = resolve_coco_path(path)
    try:
        data = json.loads(ann_file.read_text())
    except json.JSONDecodeError as e:
        raise DataError(ann_file, f"not valid JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise DataError(ann_file, "top level must be an object with images, annotations, categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(ann_file, f"missing list '{key}'")
    if not isinstance(data.get("annotations", []), list):
        raise DataError(ann_file, "'annotations' must be a list")
    src = CocoSource(ann_file=ann_file, image_root=ann_file.parent, dataset=data)
    for img in data["images"]:
        if not all(k in img for k in ("id", "file_name", "width", "height")):
            raise DataError(ann_file, f"image entry {str(img)[:80]} needs id, file_name, width, height")
        if img["id"] in src.images:
            raise DataError(ann_file, f"duplicate image id {img['id']}")
        src.images[img["id"]] = img
        src.anns_by_image[img["id"]] = []
    cat_ids = set()
    for cat in data["categories"]:
        if "id" not in cat or "name" not in cat:
            raise DataError(ann_file, f"category entry {cat} needs id and name")
        if cat["id"] in cat_ids:
            raise DataError(ann_file, f"duplicate category id {cat['id']}")
        cat_ids.add(cat["id"])
    src.categories = sorted(data["categories"], key=lambda c: c["id"])
    for ann in data.get("annotations", []):
        if ann.get("image_id") not in src.images:
            raise DataError(
                ann_file, f"annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}"
            )
        if ann.get("category_id") not in cat_ids:
            raise DataError(
                ann_file, f"annotation {ann.get('id')} has unknown category_id {ann.get('category_id')}"
            )
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            raise DataError(ann_file, f"annotation {ann.get('id')}: bbox must be [x, y, width, height]")
        src.anns_by_image[ann["image_id"]].append(ann)
    if check_files:
        missing = [
            img["file_name"]
            for img in src.images.values()
            if not _resolve_image(src.image_root, img["file_name"]).is_file()
        ]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(ann_file, f"image file '{missing[0]}' not found under {src.image_root}{more}")
    return src


# ---- category mapping ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelMap:
    """Dataset category ids -> model labels (1..K; 0 is background) and the model's class names."""

    class_names: tuple[str, ...]
    category_to_label: dict[int, int]
    mode: str  # "dataset" | "by-name" | "category-map" | "class-agnostic"
    unmapped: tuple[str, ...] = ()  # dataset category names that map to no class

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self, categories: Sequence[dict]) -> dict:
        names = {c["id"]: c["name"] for c in categories}
        return {
            "mode": self.mode,
            "class_names": list(self.class_names),
            "mapped": {names[c]: self.class_names[lab - 1] for c, lab in self.category_to_label.items()},
            "unmapped": list(self.unmapped),
        }


def normalize_name(name: str) -> str:
    """Compare category names loosely: case, separators and a leading numeric code ("002_") do not count."""
    s = re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
    return re.sub(r"^\d+_(?=[a-z])", "", s)


def read_category_map(path: str | Path) -> dict[str, str | None]:
    """A YAML or JSON mapping {dataset category name: model class name, or null to drop it}."""
    data = read_yaml(path)
    out: dict[str, str | None] = {}
    for key, value in data.items():
        if value is not None and not isinstance(value, str):
            raise DataError(path, f"category '{key}' must map to a class name or null, got {value!r}")
        out[str(key)] = value
    if not out:
        raise DataError(path, "category map is empty")
    return out


def _lookup(mapping: dict[str, str | None], name: str) -> tuple[bool, str | None]:
    if name in mapping:
        return True, mapping[name]
    norm = {normalize_name(k): v for k, v in mapping.items()}
    key = normalize_name(name)
    return (key in norm), norm.get(key)


def build_label_map(
    categories: Sequence[dict],
    *,
    class_names: Sequence[str] | None = None,
    category_map: str | Path | dict[str, str | None] | None = None,
    class_agnostic: str | None = None,
    where: str | Path = "dataset",
) -> LabelMap:
    """Decide which model class each dataset category becomes.

    Training (``class_names`` None) derives the classes: the dataset's categories in id order; or the
    distinct targets of ``category_map`` (every dataset category must appear in it; null drops one,
    so a typo cannot silently remove a class); or the single ``class_agnostic`` class.
    Evaluation (``class_names`` = the model's classes) maps the set onto them by normalised name, by
    ``category_map`` (categories absent from it are left out: real photos often show other objects), or
    everything onto one class with ``class_agnostic``.
    """
    cats = sorted(categories, key=lambda c: c["id"])
    if not cats:
        raise DataError(where, "the dataset has no categories")
    map_where = category_map if isinstance(category_map, str | Path) else where
    mapping = read_category_map(category_map) if isinstance(category_map, str | Path) else category_map

    if class_agnostic:
        # For evaluation the caller relabels every prediction of a multi-class model to this one class too.
        return LabelMap((class_agnostic,), {c["id"]: 1 for c in cats}, "class-agnostic")

    if mapping is not None:
        if class_names is None:
            targets: list[str] = []
            resolved: dict[int, str | None] = {}
            absent = []
            for c in cats:
                found, target = _lookup(mapping, c["name"])
                if not found:
                    absent.append(c["name"])
                    continue
                resolved[c["id"]] = target
                if target is not None and target not in targets:
                    targets.append(target)
            if absent:
                raise DataError(
                    map_where,
                    f"no entry for dataset categor{'y' if len(absent) == 1 else 'ies'} "
                    f"{', '.join(repr(a) for a in absent[:5])} (map to null to drop)",
                )
            if not targets:
                raise DataError(map_where, "every category maps to null: nothing to train on")
            to_label = {cid: targets.index(t) + 1 for cid, t in resolved.items() if t is not None}
            unmapped = tuple(c["name"] for c in cats if resolved.get(c["id"]) is None)
            return LabelMap(tuple(targets), to_label, "category-map", unmapped)
        norm_classes = {normalize_name(n): i + 1 for i, n in enumerate(class_names)}
        to_label, unmapped = {}, []
        for c in cats:
            found, target = _lookup(mapping, c["name"])
            if not found or target is None:
                unmapped.append(c["name"])
                continue
            if normalize_name(target) not in norm_classes:
                raise DataError(
                    map_where,
                    f"maps '{c['name']}' to '{target}', which is not a class of the model "
                    f"({', '.join(class_names[:10])})",
                )
            to_label[c["id"]] = norm_classes[normalize_name(target)]
        if not to_label:
            raise DataError(map_where, f"maps no category of {where} onto a class of the model")
        return LabelMap(tuple(class_names), to_label, "category-map", tuple(unmapped))

    if class_names is None:
        names = [c["name"] for c in cats]
        dup = [n for n, k in Counter(names).items() if k > 1]
        if dup:
            raise DataError(where, f"category name '{dup[0]}' is used by several ids; give a category map")
        return LabelMap(tuple(names), {c["id"]: i + 1 for i, c in enumerate(cats)}, "dataset")

    norm_classes = {normalize_name(n): i + 1 for i, n in enumerate(class_names)}
    to_label = {
        c["id"]: norm_classes[normalize_name(c["name"])]
        for c in cats
        if normalize_name(c["name"]) in norm_classes
    }
    unmapped = tuple(c["name"] for c in cats if c["id"] not in to_label)
    if not to_label:
        raise DataError(
            where,
            f"no category matches the model's classes ({', '.join(list(class_names)[:10])}); "
            "use --class-agnostic or --category-map",
        )
    return LabelMap(tuple(class_names), to_label, "by-name", unmapped)


# ---- images and masks ------------------------------------------------------------------------------
def decode_rgb(path: Path) -> torch.Tensor:
    """uint8 [3, H, W]; EXIF orientation is ignored, as COCO tools do (torchvision.io's decoders are deprecated)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(
            path, f"cannot decode image: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


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


def letterbox(image: torch.Tensor, size: int) -> tuple[torch.Tensor, float]:
    """Scale [C, H, W] so the longer side is `size`, pad bottom/right to size x size; returns the scale."""
    _, h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = torch.zeros((image.shape[0], size, size), dtype=image.dtype)
    if (nh, nw) != (h, w):
        resized = F.interpolate(
            image[None].float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
        )[0]
        image = resized.round().clamp(0, 255).to(image.dtype) if image.dtype == torch.uint8 else resized
    out[:, :nh, :nw] = image
    return out, scale


def _letterbox_masks(masks: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    n, h, w = masks.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = torch.zeros((n, size, size), dtype=torch.uint8)
    if n:
        out[:, :nh, :nw] = F.interpolate(masks[None].float(), size=(nh, nw), mode="nearest-exact")[0].to(
            torch.uint8
        )
    return out


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight pixel-edge boxes [x1, y1, x2, y2) of [N, H, W] masks (empty masks give zeros)."""
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    m = masks.bool()
    rows, cols = m.any(dim=2), m.any(dim=1)
    h, w = masks.shape[-2:]
    ar_y = torch.arange(h, device=masks.device)
    ar_x = torch.arange(w, device=masks.device)
    big = torch.iinfo(torch.int64).max
    y1 = torch.where(rows, ar_y, big).amin(dim=1)
    y2 = torch.where(rows, ar_y, -1).amax(dim=1) + 1
    x1 = torch.where(cols, ar_x, big).amin(dim=1)
    x2 = torch.where(cols, ar_x, -1).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    return torch.where(rows.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


# ---- datasets --------------------------------------------------------------------------------------
class CocoDetection(Dataset):
    """(uint8 image [3, H, W], target) pairs in torchvision's detection format.

    target: boxes float32 [N, 4] xyxy pixels, labels int64 [N] (model labels), masks uint8 [N, H, W] when
    ``masks`` and the set has segmentations, image_id, orig_size (H, W), scale (letterbox factor).
    Crowd regions and categories that map to no class are left out; with ``image_size`` None the image
    keeps its size (evaluation).
    """

    def __init__(
        self,
        source: CocoSource | str | Path,
        label_map: LabelMap,
        *,
        image_ids: Sequence[int] | None = None,
        image_size: int | None = None,
        masks: bool = True,
    ):
        self.source = source if isinstance(source, CocoSource) else load_coco(source)
        self.label_map = label_map
        self.image_ids = list(image_ids) if image_ids is not None else sorted(self.source.images)
        unknown = [i for i in self.image_ids if i not in self.source.images]
        if unknown:
            raise DataError(self.source.ann_file, f"image id {unknown[0]} is not in the set")
        self.image_size = image_size
        self.masks = bool(masks) and self.source.has_masks

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image_id = self.image_ids[index]
        info = self.source.images[image_id]
        path = self.source.image_path(image_id)
        image = decode_rgb(path)
        h, w = int(info["height"]), int(info["width"])
        if tuple(image.shape[1:]) != (h, w):
            raise DataError(
                path, f"image is {image.shape[2]}x{image.shape[1]} but the annotations say {w}x{h}"
            )
        anns = [
            a
            for a in self.source.anns_by_image[image_id]
            if not a.get("iscrowd", 0)
            and a["category_id"] in self.label_map.category_to_label
            and a["bbox"][2] > 0
            and a["bbox"][3] > 0
        ]
        boxes = torch.tensor(
            [
                [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                for a in anns
            ],
            dtype=torch.float32,
        ).reshape(-1, 4)
        labels = torch.tensor(
            [self.label_map.category_to_label[a["category_id"]] for a in anns], dtype=torch.int64
        )
        masks = None
        if self.masks:
            masks = torch.from_numpy(
                np.stack([segmentation_to_mask(a["segmentation"], h, w) for a in anns])
                if anns
                else np.zeros((0, h, w), np.uint8)
            )
        scale = 1.0
        if self.image_size is not None:
            image, scale = letterbox(image, self.image_size)
            boxes = boxes * scale
            if masks is not None:
                masks = _letterbox_masks(masks, self.image_size, scale)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image.shape[2])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image.shape[1])
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        if masks is not None:
            keep &= masks.flatten(1).amax(dim=1) > 0 if len(masks) else keep
        target = {
            "boxes": boxes[keep],
            "labels": labels[keep],
            "image_id": image_id,
            "orig_size": (h, w),
            "scale": scale,
        }
        if masks is not None:
            target["masks"] = masks[keep]
        return image, target


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class UnlabelledImages(Dataset):
    """Target-domain photos without labels (for DANN): a folder (searched recursively) or a COCO file."""

    def __init__(self, path: str | Path, image_size: int):
        p = Path(path)
        if p.is_dir() and not (p / "annotations.json").is_file():
            self.paths = list_images(p)
        elif p.exists():
            src = load_coco(p)
            self.paths = [src.image_path(i) for i in sorted(src.images)]
        else:
            raise DataError(p, "target images not found (expected a folder of images or a COCO dataset)")
        if not self.paths:
            raise DataError(p, f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return letterbox(decode_rgb(self.paths[index]), self.image_size)[0]


def collate_detection(batch: list) -> tuple[list[torch.Tensor], list[dict]]:
    return [b[0] for b in batch], [b[1] for b in batch]


# ---- order and splits ------------------------------------------------------------------------------
def split_image_ids(image_ids: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train/val split of image ids (same ids, fraction and seed -> same split)."""
    ids = sorted(image_ids)
    if val_fraction <= 0 or len(ids) < 2:
        return ids, []
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    perm = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in perm[:n_val])
    val_set = set(val)
    return [i for i in ids if i not in val_set], val


class StepBatchSampler(Sampler[list[int]]):
    """This process's share of each step's global batch, for steps [start_step, steps).

    Step s uses positions s*G .. s*G+G-1 (G = batch_size * world_size) of an endless stream that
    concatenates one seeded permutation of the dataset per epoch; rank r takes every world_size-th of
    them. So the global batch of a step is the same for 1 or N processes, and resuming at step s
    continues exactly where the interrupted run was, without replaying the earlier batches.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        steps: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        start_step: int = 0,
    ):
        if n <= 0:
            raise DataError(None, "cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.steps = n, batch_size, steps
        self.world_size, self.rank, self.seed, self.start_step = world_size, rank, seed, start_step

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[list[int]]:
        g = self.batch_size * self.world_size
        cached_epoch, perm = -1, None
        for step in range(self.start_step, self.steps):
            batch = []
            for k in range(step * g + self.rank, step * g + g, self.world_size):
                epoch, pos = divmod(k, self.n)
                if epoch != cached_epoch:
                    cached_epoch, perm = epoch, self._permutation(epoch)
                batch.append(int(perm[pos]))
            yield batch

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)


# ---- summaries -------------------------------------------------------------------------------------
def dataset_summary(source: CocoSource, label_map: LabelMap, image_ids: Sequence[int] | None = None) -> dict:
    """Counts a report can show: images, instances per class, image sizes, masks, mapping."""
    ids = list(image_ids) if image_ids is not None else sorted(source.images)
    per_class: Counter = Counter()
    sizes = []
    crowd = dropped = 0
    for i in ids:
        info = source.images[i]
        sizes.append((int(info["width"]), int(info["height"])))
        for a in source.anns_by_image[i]:
            if a.get("iscrowd", 0):
                crowd += 1
            elif a["category_id"] in label_map.category_to_label:
                per_class[label_map.class_names[label_map.category_to_label[a["category_id"]] - 1]] += 1
            else:
                dropped += 1
    ws, hs = [s[0] for s in sizes] or [0], [s[1] for s in sizes] or [0]
    return {
        "path": str(source.ann_file),
        "images": len(ids),
        "instances": int(sum(per_class.values())),
        "instances_per_class": {n: int(per_class.get(n, 0)) for n in label_map.class_names},
        "instances_per_image": round(sum(per_class.values()) / max(1, len(ids)), 2),
        "crowd_regions": crowd,
        "dropped_unmapped": dropped,
        "has_masks": source.has_masks,
        "width_range": [min(ws), max(ws)],
        "height_range": [min(hs), max(hs)],
        "mapping": label_map.describe(source.categories),
    }


def epochs_for(steps: int, batch_size: int, world_size: int, n_images: int) -> float:
    return round(steps * batch_size * world_size / max(1, n_images), 2) if n_images else math.nan
