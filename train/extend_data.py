"""The classes of an extended detector and its data written in their terms, for train.extend.

Classes: the base model's classes keep their labels (1..K) and each category of the new set that is not
one of them is appended (K+1.., in category id order). A category of the new set is an old class when its
name (compared by train.data.normalize_name) is an old class's name or the name of a category of the base
model's training data (the replay set) that maps to one. Sets are matched by name, not by id: a rendered
set numbers its sorted category names from 1, so adding SKUs shifts the ids of old ones, and they are
relabelled here. Two categories of one set with one name but different ids cannot be told apart: an error.

Every set the extension reads (new data, replayed data, evaluation sets) is rewritten as a COCO file in
the extended model's class space: categories ``{id: label, name: class}`` for all classes, annotations
relabelled, categories of no class left out. The files live in ``OUT/data/`` and reach their images through
symbolic links ``OUT/data/images/<part>`` to each set's image folder, so nothing is copied and load_coco's
rule that file names stay inside the set's folder holds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from synth.coco import CocoSource
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json
from train.config import TrainConfig
from train.data import DataError, LabelMap, build_label_map, normalize_name


@dataclass(frozen=True)
class ClassUnion:
    """The extended model's classes: the base model's, then the new ones."""

    old: tuple[str, ...]
    new: tuple[str, ...]
    # normalised category name -> old class name (old class names and the replay set's categories)
    old_names: dict[str, str] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.old + self.new

    def label(self, name: str) -> int | None:
        """The model label (1..K') a category name stands for, or None."""
        key = normalize_name(name)
        labels = {normalize_name(c): i + 1 for i, c in enumerate(self.class_names)}
        if key in labels:
            return labels[key]
        return labels[normalize_name(self.old_names[key])] if key in self.old_names else None

    def labels(self) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.class_names)}


def replay_label_map(replay: CocoSource, base: TrainConfig, old: Sequence[str]) -> LabelMap:
    """How the base model saw the replay set's categories: its class-agnostic class, its category map
    (when the file is still there), else by name onto its classes."""
    try:
        if base.class_agnostic:
            return build_label_map(replay.categories, class_agnostic=base.class_agnostic)
        cmap = base.category_map if base.category_map and Path(base.category_map).is_file() else None
        return build_label_map(
            replay.categories, class_names=list(old), category_map=cmap, where=replay.ann_file
        )
    except DataError:
        raise ConfigError(
            replay.ann_file,
            f"none of its categories is a class of the base model ({', '.join(old[:8])}): "
            "is it the base model's training data?",
        ) from None


def union_classes(
    old: Sequence[str], new_set: CocoSource, replay: CocoSource | None, replay_map: LabelMap | None
) -> ClassUnion:
    """The base model's classes plus the new set's other categories; one name under two ids, or a new
    set without new categories, is a one-line error."""
    old_names = {normalize_name(c): c for c in old}
    if replay is not None and replay_map is not None:
        cats = {c["id"]: c["name"] for c in replay.categories}
        for cid, lab in replay_map.category_to_label.items():
            old_names.setdefault(normalize_name(cats[cid]), old[lab - 1])
    seen: dict[str, dict] = {}
    new: list[str] = []
    for c in sorted(new_set.categories, key=lambda c: c["id"]):
        key = normalize_name(c["name"])
        if key in seen:
            raise ConfigError(
                new_set.ann_file,
                f"categories {seen[key]['id']} ('{seen[key]['name']}') and {c['id']} ('{c['name']}') have "
                "one name but different ids: merge or rename them",
            )
        seen[key] = c
        if key not in old_names:
            new.append(c["name"])
    if not new:
        raise ConfigError(
            new_set.ann_file,
            f"no new category: every category is already a class of the base model ({', '.join(old[:8])})",
        )
    return ClassUnion(tuple(old), tuple(new), old_names)


@dataclass(frozen=True)
class Part:
    """Images of one set to write in class space: ``tag`` names its image link."""

    source: CocoSource
    image_ids: list[int]
    tag: str
    label_map: LabelMap | None = None  # the replay set's: how the base model saw it; else by name


def _category_labels(part: Part, union: ClassUnion) -> dict[int, int]:
    if part.label_map is not None:
        old = part.label_map.class_names
        return {
            cid: union.class_names.index(old[lab - 1]) + 1
            for cid, lab in part.label_map.category_to_label.items()
        }
    found = {c["id"]: union.label(c["name"]) for c in part.source.categories}
    return {cid: lab for cid, lab in found.items() if lab is not None}


def link_images(data_dir: Path, part: Part) -> str:
    """OUT/data/images/<tag> -> the part's image folder; returns the prefix of its file names."""
    link = data_dir / "images" / part.tag
    link.parent.mkdir(parents=True, exist_ok=True)
    target = part.source.image_root.resolve()
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return f"images/{part.tag}"
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    return f"images/{part.tag}"


def write_class_space(path: Path, parts: Sequence[Part], union: ClassUnion) -> dict:
    """Write the parts as one COCO file in the extended model's classes (image ids renumbered from 1, in
    part order); returns the file's counts: images per part and objects per class."""
    images, anns, per_part = [], [], {}
    per_class = dict.fromkeys(union.class_names, 0)
    for part in parts:
        to_label = _category_labels(part, union)
        prefix = link_images(path.parent, part)
        per_part[part.tag] = len(part.image_ids)
        for image_id in part.image_ids:
            info = part.source.images[image_id]
            rel = os.path.relpath(part.source.image_path(image_id), part.source.image_root)
            new_id = len(images) + 1
            images.append(
                {
                    "id": new_id,
                    "file_name": f"{prefix}/{rel}",
                    "width": info["width"],
                    "height": info["height"],
                }
            )
            for a in part.source.anns_by_image[image_id]:
                lab = to_label.get(a["category_id"])
                if lab is None:
                    continue
                anns.append({**a, "id": len(anns) + 1, "image_id": new_id, "category_id": lab})
                if not a.get("iscrowd", 0):
                    per_class[union.class_names[lab - 1]] += 1
    cats = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(union.class_names)]
    atomic_write_json(path, {"images": images, "annotations": anns, "categories": cats}, indent=None)
    return {"path": str(path), "images": per_part, "objects_per_class": per_class}


def safe_tag(name: str) -> str:
    """A file-system-safe name for an evaluation set's files and image link."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "set"
