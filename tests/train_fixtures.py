"""Tiny synthetic COCO sets for the train/ tests: coloured shapes on noisy backgrounds, exact masks.

Class is decided by shape (rectangle "box", ellipse "disc", triangle "wedge"), never by colour, so a
detector must learn geometry. Later shapes occlude earlier ones; masks are the visible (modal) pixels,
boxes their tight pixel-edge boxes, areas their pixel counts, all written as COCO RLE via pycocotools.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

CLASSES = ("box", "disc", "wedge")
SHARED = Path(os.environ.get("SIMREAL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def _background(rng: np.random.Generator, h: int, w: int, style: str) -> np.ndarray:
    coarse = rng.uniform(0, 1, (4, 4, 3))
    yy, xx = np.linspace(0, 3, h), np.linspace(0, 3, w)
    y0, x0 = np.floor(yy).astype(int).clip(0, 2), np.floor(xx).astype(int).clip(0, 2)
    fy, fx = (yy - y0)[:, None, None], (xx - x0)[None, :, None]
    smooth = (
        coarse[y0][:, x0] * (1 - fy) * (1 - fx)
        + coarse[y0 + 1][:, x0] * fy * (1 - fx)
        + coarse[y0][:, x0 + 1] * (1 - fy) * fx
        + coarse[y0 + 1][:, x0 + 1] * fy * fx
    )
    if style == "dark":  # a different "domain": darker, bluish, grainier
        smooth = smooth * 0.35 + np.array([0.0, 0.05, 0.2])
        noise = 0.12
    else:
        smooth = 0.25 + 0.5 * smooth
        noise = 0.06
    return np.clip(smooth + rng.normal(0, noise, (h, w, 3)), 0, 1)


def _shape_mask(
    kind: str, rng: np.random.Generator, h: int, w: int, min_side: int, max_side: int
) -> np.ndarray:
    bw, bh = rng.integers(min_side, max_side + 1, size=2)
    x0, y0 = rng.integers(0, w - bw + 1), rng.integers(0, h - bh + 1)
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = xx + 0.5, yy + 0.5
    if kind == "box":
        m = (cx >= x0) & (cx < x0 + bw) & (cy >= y0) & (cy < y0 + bh)
    elif kind == "disc":
        m = ((cx - (x0 + bw / 2)) / (bw / 2)) ** 2 + ((cy - (y0 + bh / 2)) / (bh / 2)) ** 2 <= 1.0
    else:  # upward triangle inside the box
        t = (cy - y0) / bh
        m = (t >= 0) & (t <= 1) & (np.abs(cx - (x0 + bw / 2)) <= t * bw / 2)
    return m


def make_shapes_coco(
    root: Path,
    n_images: int = 24,
    size: int | tuple[int, int] = 96,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES[:2],
    objects: tuple[int, int] = (1, 3),
    side: tuple[int, int] = (14, 40),
    style: str = "light",
    masks: bool = True,
    image_format: str = "png",
) -> Path:
    """Write root/images/*.png and root/annotations.json; returns root."""
    rng = np.random.default_rng(seed)
    w, h = (size, size) if isinstance(size, int) else size
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n_images):
        img = _background(rng, h, w, style)
        layers = []
        for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
            cls = int(rng.integers(0, len(classes)))
            m = _shape_mask(classes[cls], rng, h, w, *side)
            colour = rng.uniform(0.05, 0.95, 3)
            img[m] = np.clip(colour + rng.normal(0, 0.03, (int(m.sum()), 3)), 0, 1)
            layers = [(c, lm & ~m) for c, lm in layers] + [(cls, m)]
        name = f"images/{i:04d}.{image_format}"
        Image.fromarray((img * 255).round().astype(np.uint8)).save(root / name)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for cls, m in layers:
            if m.sum() < 30:
                continue
            ys, xs = np.nonzero(m)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            ann = {
                "id": len(anns) + 1,
                "image_id": i + 1,
                "category_id": cls + 1,
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float(m.sum()),
                "iscrowd": 0,
            }
            if masks:
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                ann["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
            anns.append(ann)
    cats = [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(classes)]
    (root / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


def make_image_folder(
    root: Path, n_images: int = 8, size: int = 96, seed: int = 1, style: str = "dark"
) -> Path:
    """Unlabelled "target domain" photos: the same shapes on a different background, no annotations."""
    tmp = make_shapes_coco(root / "_coco", n_images=n_images, size=size, seed=seed, style=style)
    root.mkdir(parents=True, exist_ok=True)
    for p in sorted((tmp / "images").iterdir()):
        p.rename(root / p.name)
    (tmp / "annotations.json").unlink()
    (tmp / "images").rmdir()
    tmp.rmdir()
    return root


def tiny_rcnn_model(image_size: int = 96, **overrides) -> dict:
    """A Mask R-CNN MobileNetV3 config small enough for CPU tests (few RoIs, slim heads)."""
    cfg = {
        "name": "maskrcnn_mobilenet_v3_large_fpn",
        "image_size": image_size,
        "use_hub_cache": False,
        "mobilenet_finest_stride": 8,
        "rpn_batch_size_per_image": 64,
        "rpn_pre_nms_top_n_train": 300,
        "rpn_post_nms_top_n_train": 100,
        "rpn_pre_nms_top_n_test": 200,
        "rpn_post_nms_top_n_test": 50,
        "box_batch_size_per_image": 64,
        "box_head_dim": 256,
        "mask_head_channels": [64, 64],
        "fpn_channels": 64,
    }
    cfg.update(overrides)
    return cfg


def tiny_train_config(data: Path, out: Path, steps: int = 4, **overrides) -> dict:
    """A TrainConfig dict for a few CPU steps of the tiny Mask R-CNN (no augmentation, no progress bar)."""
    cfg = {
        "data": str(data),
        "out": str(out),
        "model": tiny_rcnn_model(64),
        "steps": steps,
        "batch_size": 2,
        "lr": 0.01,
        "warmup_steps": 1,
        "log_every": 1,
        "checkpoint_every": 1000,
        "workers": 0,
        "threads": 1,
        "val_fraction": 0.0,
        "progress": False,
        "augment": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def read_log(run: Path) -> list[dict]:
    import csv

    with (run / "log.csv").open(newline="") as f:
        return list(csv.DictReader(f))
