"""COCO datasets as torchvision detection targets, category mapping, target-domain images, splits.

COCO is the only contract with the renderer: everything here works the same on a customer's real
labelled photos. Reading and checking COCO files is synth.coco's job (``load_coco``); this module turns a
loaded ``CocoSource`` into tensors.

Images are decoded in DataLoader workers and letterboxed (scaled so the longer side is ``image_size``,
padded at the bottom/right) to one square size, so a batch stacks into one tensor that kornia can
augment on the device in one call. Loading has no randomness: augmentation happens later on the device,
so the data order alone (``StepBatchSampler``) decides what a step sees, for any number of workers or
processes.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from synth.coco import COCO_FILE_NAMES, CocoSource, load_coco, segmentation_to_mask, summarise
from synth.config import read_yaml
from synth.errors import SimrealError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class DataError(SimrealError):
    """An image folder, image file, category map or split that cannot be used (COCO problems: CocoError)."""


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
    if mapping is not None and class_names is None:
        return _classes_from_map(cats, mapping, map_where)
    if mapping is not None:
        return _map_onto_classes(cats, mapping, class_names, map_where, where)
    if class_names is None:
        names = [c["name"] for c in cats]
        dup = [n for n, k in Counter(names).items() if k > 1]
        if dup:
            raise DataError(where, f"category name '{dup[0]}' is used by several ids; give a category map")
        return LabelMap(tuple(names), {c["id"]: i + 1 for i, c in enumerate(cats)}, "dataset")
    return _match_by_name(cats, class_names, where)


def _classes_from_map(cats: list[dict], mapping: dict[str, str | None], map_where) -> LabelMap:
    """Training with a category map: the classes are its distinct targets, in category id order."""
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


def _map_onto_classes(
    cats: list[dict], mapping: dict[str, str | None], class_names: Sequence[str], map_where, where
) -> LabelMap:
    """Evaluation with a category map: each mapped category onto the model class its target names."""
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


def _match_by_name(cats: list[dict], class_names: Sequence[str], where) -> LabelMap:
    """Evaluation without a map: categories whose normalised name is a model class."""
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
    """Tight pixel-edge boxes [x1, y1, x2, y2) of [N, H, W] masks (empty masks give zeros):
    ``torchvision.ops.masks_to_boxes`` gives the last pixel's index as x2 / y2, COCO boxes end one past it."""
    from torchvision.ops import masks_to_boxes as pixel_index_boxes

    boxes = pixel_index_boxes(masks.bool())
    if len(boxes):
        boxes[:, 2:] += masks.flatten(1).any(dim=1, keepdim=True).to(boxes.dtype)
    return boxes


# ---- datasets --------------------------------------------------------------------------------------
class CocoDetection(Dataset):
    """(uint8 image [3, H, W], target) pairs in torchvision's detection format.

    Not torchvision's ``CocoDetection`` + ``wrap_dataset_for_transforms_v2``: that pair re-reads the file
    with ``pycocotools.COCO`` (no validation: an RLE whose runs exceed the image reaches ``mask.decode``,
    which writes past its buffer; a ``file_name`` like ``../../x.jpg`` is joined to the root as it is),
    and yields the file's category ids, not this set's label map (class-agnostic, mapped, left-out
    categories). Here the set comes checked from synth.coco and only decoding and letterboxing are ours.

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
        if p.is_dir() and not any((p / name).is_file() for name in COCO_FILE_NAMES):
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


# Modules a loader worker needs, imported once by the fork server instead of once per worker.
LOADER_PRELOAD = ("torch", "train.data")


def loader_context() -> multiprocessing.context.BaseContext:
    """How DataLoader workers start. Never forked from the training process: a worker forked from a
    process that runs other threads (a Prefect flow's log and API threads) inherits their locks, and
    exited with code 1 at the end of every such run. Spawned workers are safe but start one after
    another: the parent's write of the pickled dataset waits until each child has imported torch (6
    workers: 10 s on 2 cores, 22 s on a 16-core GPU machine). Workers forked from multiprocessing's fork
    server, a fresh single-threaded interpreter that has imported ``LOADER_PRELOAD`` once, are safe and
    start in about 2 s. Spawn where there is no fork server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(LOADER_PRELOAD))
    return ctx


# ---- order and splits ------------------------------------------------------------------------------
def split_image_ids(
    image_ids: Sequence[int], val_fraction: float, seed: int, fold: int = 0
) -> tuple[list[int], list[int]]:
    """Deterministic train/val split of image ids (same ids, fraction, seed and fold -> same split).

    The held-out ids are the ``fold``-th block of one seeded permutation, so folds 0, 1, ... of one seed
    are disjoint (cross-validation) and fold 0 is the plain split."""
    ids = sorted(image_ids)
    if val_fraction <= 0 or len(ids) < 2:
        if fold:
            raise ValueError(f"fold {fold} needs a held-out fraction above 0 and at least 2 items")
        return ids, []
    n_val = min(len(ids) - 1, max(1, round(len(ids) * val_fraction)))
    folds = len(ids) // n_val
    if not 0 <= fold < folds:
        raise ValueError(
            f"fold {fold} is out of range: {len(ids)} items with {n_val} held out make folds 0..{folds - 1}"
        )
    perm = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in perm[fold * n_val : (fold + 1) * n_val])
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
    summary = summarise(source, ids)
    label_of_name: dict[str, int | None] = {}
    for c in source.categories:  # every mode maps by name, so categories sharing a name share a label
        label_of_name.setdefault(c["name"], label_map.category_to_label.get(c["id"]))
    per_class: Counter = Counter()
    dropped = 0
    for name, n in summary["per_category"].items():
        if label_of_name[name] is None:
            dropped += n
        else:
            per_class[label_map.class_names[label_of_name[name] - 1]] += n
    ws = [int(source.images[i]["width"]) for i in ids] or [0]
    hs = [int(source.images[i]["height"]) for i in ids] or [0]
    return {
        "path": summary["path"],
        "images": len(ids),
        "instances": int(sum(per_class.values())),
        "instances_per_class": {n: int(per_class.get(n, 0)) for n in label_map.class_names},
        "instances_per_image": round(sum(per_class.values()) / max(1, len(ids)), 2),
        "crowd_regions": summary["crowd"],
        "dropped_unmapped": dropped,
        "has_masks": source.has_masks,
        "width_range": [min(ws), max(ws)],
        "height_range": [min(hs), max(hs)],
        "mapping": label_map.describe(source.categories),
    }


def epochs_for(steps: int, batch_size: int, world_size: int, n_images: int) -> float:
    return round(steps * batch_size * world_size / max(1, n_images), 2) if n_images else math.nan
