"""Scene statistics a render config can be fitted to, and their 1-D Wasserstein distances.

From boxes (a labelled COCO set): the relative longer side of each box (``max(w / W, h / H)``), boxes
per image, box centres (``x / W``, ``y / H``). From pixels (any image): brightness (mean luma), contrast
(luma standard deviation) and warmth (mean red minus mean blue), on images shrunk to 64 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synth.coco import CocoSource, load_coco
from synth.errors import ConfigError
from synth.randomize.settings import PHOTO_SUFFIXES

BOX_KEYS = ("rel_side", "boxes_per_image", "center_x", "center_y")
PIXEL_KEYS = ("brightness", "contrast", "warmth")
MAX_PIXEL_IMAGES = 200


def photo_set(path: str | Path) -> tuple[CocoSource | None, list[Path]]:
    """A COCO set (file, or folder with annotations.json) or a folder of unlabelled photos."""
    path = Path(path)
    coco = path / "annotations.json" if path.is_dir() else path
    if coco.is_file() and coco.suffix == ".json":
        source = load_coco(coco, check_files=False)
        return source, [source.image_path(i) for i in sorted(source.images)]
    if not path.is_dir():
        raise ConfigError(path, "photos: not a COCO file or a folder of images")
    images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not images:
        raise ConfigError(path, f"photos: no annotations.json and no {'/'.join(PHOTO_SUFFIXES)} images")
    return None, images


def box_stats(source: CocoSource) -> dict[str, np.ndarray]:
    rel, per_image, cx, cy = [], [], [], []
    for image_id in sorted(source.images):
        info = source.images[image_id]
        W, H = float(info["width"]), float(info["height"])
        n = 0
        for a in source.anns_by_image[image_id]:
            x, y, w, h = (float(v) for v in a["bbox"])
            if a.get("iscrowd", 0) or w <= 0 or h <= 0:
                continue
            rel.append(max(w / W, h / H))
            cx.append((x + w / 2) / W)
            cy.append((y + h / 2) / H)
            n += 1
        per_image.append(n)
    arrays = {"rel_side": rel, "boxes_per_image": per_image, "center_x": cx, "center_y": cy}
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}


def pixel_stats(images: list[Path]) -> dict[str, np.ndarray]:
    import cv2

    step = max(1, len(images) // MAX_PIXEL_IMAGES)
    out = {k: [] for k in PIXEL_KEYS}
    for path in images[::step]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConfigError(path, "photos: not a readable image")
        scale = 64.0 / max(bgr.shape[:2])
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) / 255.0
        b, g, r = small[..., 0], small[..., 1], small[..., 2]
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        out["brightness"].append(float(luma.mean()))
        out["contrast"].append(float(luma.std()))
        out["warmth"].append(float(r.mean() - b.mean()))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def image_size(source: CocoSource | None, images: list[Path]) -> tuple[int, int]:
    """Median (width, height) of a set's images."""
    if source is not None and source.images:
        wh = np.array([(i["width"], i["height"]) for i in source.images.values()])
    else:
        import cv2

        wh = np.array([cv2.imread(str(p)).shape[1::-1] for p in images[:50]])
    return int(np.median(wh[:, 0])), int(np.median(wh[:, 1]))


def set_stats(path: str | Path) -> dict[str, np.ndarray]:
    """Every statistic a set allows: box statistics when labelled, pixel statistics always."""
    source, images = photo_set(path)
    stats = pixel_stats(images)
    if source is not None:
        stats.update(box_stats(source))
    return stats


def distances(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """1-D Wasserstein distance per statistic both sides have (NaN when one side is empty)."""
    from scipy.stats import wasserstein_distance

    out = {}
    for key in (*BOX_KEYS, *PIXEL_KEYS):
        if key in a and key in b:
            ok = len(a[key]) and len(b[key])
            out[key] = round(float(wasserstein_distance(a[key], b[key])), 5) if ok else float("nan")
    return out
