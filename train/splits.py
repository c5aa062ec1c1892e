"""Leak-free train/test splits of real COCO sets, and the checks that prove a split is leak-free.

A benchmark is only honest if no test photo, nor a copy of one, ever reaches training. Two things break
that silently: exports that store several augmented copies of one photo (Roboflow names them
``<photo>_jpg.rf.<hash>.jpg``), and test sets that share files with the training set. So splits are made
over *groups* (all copies of one photo stay on one side), and any two sets can be compared by file
content (identical bytes) and by thumbnail correlation (the same photo resized or re-encoded) before training starts.

The id draw itself is ``train.data.split_image_ids`` (seeded, sorted ids), applied to group indices, so
the same set, fraction and seed always give the same split on any machine.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.coco import CocoSource
from synth.fsutil import atomic_write_json
from train.data import DataError, split_image_ids

# "train_picture_10_jpg.rf.2bc399da37b2.jpg" -> "train_picture_10": Roboflow's augmented copies of one photo.
_ROBOFLOW_COPY = re.compile(r"(?:_(?:jpe?g|png|bmp|webp))?\.rf\.[0-9a-f]{8,}$", re.IGNORECASE)
# Correlation of 32x32 grey thumbnails above which two pictures are one photo stored twice: a resized,
# re-encoded copy scores 0.999; different photos of screws on one table, rotated with black corners,
# reach 0.977 (measured on amv_screws_train).
NEAR_DUPLICATE_CORRELATION = 0.99
THUMBNAIL_SIDE = 32


def photo_group(file_name: str) -> str:
    """The photo an image file was made from: its stem, minus an export tool's copy suffix."""
    stem = Path(file_name).stem
    return _ROBOFLOW_COPY.sub("", stem)


@dataclass(frozen=True)
class Split:
    train_ids: list[int]
    test_ids: list[int]
    groups: int  # distinct photos the images came from

    def describe(self) -> dict:
        return {
            "train_images": len(self.train_ids),
            "test_images": len(self.test_ids),
            "photo_groups": self.groups,
        }


def split_by_photo(source: CocoSource, test_fraction: float, seed: int, fold: int = 0) -> Split:
    """Deterministic split with every copy of a photo on the same side; about ``test_fraction`` of the
    photos go to test. Images without any annotation stay in the draw (they are valid test negatives).
    ``fold`` k holds out the k-th disjoint block of the same seeded draw (fold 0 is the plain split), so
    runs on folds 0, 1, ... test on different photos and together use most of a small set for testing."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(source.ann_file, f"test fraction must be between 0 and 1, got {test_fraction}")
    by_group: dict[str, list[int]] = {}
    for image_id in sorted(source.images):
        by_group.setdefault(photo_group(source.images[image_id]["file_name"]), []).append(image_id)
    names = sorted(by_group)
    if len(names) < 2:
        raise DataError(source.ann_file, f"needs at least 2 distinct photos to split, found {len(names)}")
    try:
        train_groups, test_groups = split_image_ids(list(range(len(names))), test_fraction, seed, fold)
    except ValueError as exc:
        raise DataError(
            source.ann_file, f"test {exc} (items: photos; test fraction {test_fraction})"
        ) from None
    train = sorted(i for g in train_groups for i in by_group[names[g]])
    test = sorted(i for g in test_groups for i in by_group[names[g]])
    return Split(train, test, len(names))


def write_subset(source: CocoSource, image_ids: Iterable[int], path: str | Path, *, note: str = "") -> Path:
    """Write a COCO file holding only ``image_ids`` (and their annotations), written atomically.

    Its images are symlinks to the original photos in ``<stem>_images/`` beside it (same base names), so
    the subset can live anywhere without copying a photo, and its file names stay inside its folder as
    load_coco demands of every set; ids, categories and every annotation field are kept as they are."""
    ids = sorted(set(image_ids))
    unknown = [i for i in ids if i not in source.images]
    if unknown:
        raise DataError(source.ann_file, f"image id {unknown[0]} is not in the set")
    out = Path(path)
    images = []
    for i in ids:
        info = dict(source.images[i])
        info["file_name"] = _link_image(source, i, out.parent, f"{out.stem}_images")
        images.append(info)
    keep = set(ids)
    anns = [a for a in source.dataset.get("annotations", []) if a["image_id"] in keep]
    info = dict(source.dataset.get("info") or {})
    info.update(subset_of=str(source.ann_file.resolve()), images=len(ids))
    if note:
        info["note"] = note
    atomic_write_json(
        out,
        {"info": info, "images": images, "annotations": anns, "categories": source.categories},
        indent=None,
    )
    return out


def _link_image(source: CocoSource, image_id: int, root: Path, folder: str) -> str:
    """Symlink ``folder/<original relative name>`` under ``root`` to the photo (atomically); its file name."""
    name = source.images[image_id]["file_name"]
    rel = os.path.normpath(name)
    if os.path.isabs(rel) or rel.startswith(".."):  # a set loaded with images_root: keep ids apart
        rel = os.path.join(str(image_id), os.path.basename(rel))
    link = root / folder / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(source.image_path(image_id).resolve(), tmp)
    os.replace(tmp, link)
    return Path(folder, rel).as_posix()


# ---- leak checks ------------------------------------------------------------------------------------
def file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def thumbnail_signature(path: Path) -> np.ndarray:
    """A unit-norm, zero-mean 32x32 grey thumbnail: the dot product of two signatures is their normalised
    cross-correlation. It survives resizing and re-encoding, not crops or flips: it finds the same photo
    stored twice, not merely similar photos (a perceptual hash such as dHash confuses different photos of
    small objects on one plain table)."""
    from PIL import Image

    with Image.open(path) as im:
        grey = np.asarray(
            im.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR),
            dtype=np.float64,
        ).ravel()
    grey -= grey.mean()
    norm = np.linalg.norm(grey)
    return grey / norm if norm > 0 else grey


def _paths(source: CocoSource, ids: Sequence[int] | None) -> list[Path]:
    return [source.image_path(i) for i in (sorted(source.images) if ids is None else ids)]


def overlap_report(
    train: CocoSource,
    test: CocoSource,
    train_ids: Sequence[int] | None = None,
    test_ids: Sequence[int] | None = None,
) -> dict:
    """Compare a training and a test selection: shared photos, identical files, near-identical pictures.

    Returns counts and up to 10 example pairs of each; ``leak`` is True when anything is shared."""
    train_paths, test_paths = _paths(train, train_ids), _paths(test, test_ids)
    # Within one set, every photo group must sit on one side. Across two sets, plain names like 0001.jpg
    # repeat by chance, so only export copies (<photo>_jpg.rf.<hash>) count as the same photo.
    same_set = train.ann_file.resolve() == test.ann_file.resolve()

    def groups_of(paths: list[Path]) -> set[str]:
        return {photo_group(p.name) for p in paths if same_set or photo_group(p.name) != p.stem}

    groups = groups_of(train_paths) & groups_of(test_paths)
    same_file = {p.resolve() for p in train_paths} & {p.resolve() for p in test_paths}
    digests = {}
    for p in train_paths:
        digests.setdefault(file_digest(p), p)
    identical = [(str(digests[d]), str(p)) for p in test_paths if (d := file_digest(p)) in digests]
    near = []
    if train_paths and test_paths:
        a = np.stack([thumbnail_signature(p) for p in train_paths])
        b = np.stack([thumbnail_signature(p) for p in test_paths])
        corr = b @ a.T  # [test, train]
        best = corr.argmax(axis=1)
        for j, k in enumerate(best):
            if corr[j, k] >= NEAR_DUPLICATE_CORRELATION:
                near.append((str(train_paths[k]), str(test_paths[j]), round(float(corr[j, k]), 4)))
    return {
        "train_images": len(train_paths),
        "test_images": len(test_paths),
        "shared_photo_groups": sorted(groups)[:10],
        "shared_photo_groups_count": len(groups),
        "same_files_count": len(same_file),
        "identical_files": identical[:10],
        "identical_files_count": len(identical),
        "near_duplicates": near[:10],
        "near_duplicates_count": len(near),
        "near_duplicate_correlation": NEAR_DUPLICATE_CORRELATION,
        "leak": bool(groups or same_file or identical or near),
    }


def assert_no_leak(report: dict, where: str | Path) -> None:
    """Stop when a test picture also sits in training (the benchmark would measure memorisation)."""
    if not report["leak"]:
        return
    parts = []
    if report["same_files_count"]:
        parts.append(f"{report['same_files_count']} files are in both")
    if report["identical_files_count"]:
        a, b = report["identical_files"][0]
        parts.append(
            f"{report['identical_files_count']} identical files (e.g. {Path(b).name} = {Path(a).name})"
        )
    if report["shared_photo_groups_count"]:
        parts.append(
            f"{report['shared_photo_groups_count']} photos have copies on both sides "
            f"(e.g. {report['shared_photo_groups'][0]})"
        )
    if report["near_duplicates_count"]:
        a, b, d = report["near_duplicates"][0]
        parts.append(
            f"{report['near_duplicates_count']} near-identical pictures (e.g. {Path(b).name} ~ "
            f"{Path(a).name}, thumbnail correlation {d})"
        )
    raise DataError(where, "test images leak into training: " + "; ".join(parts))
