"""``simreal stats DIR``: what a dataset contains, as JSON and plots, to compare a synthetic dataset with a
real test set before training (class balance, crowding, object scale, occlusion).

Writes ``DIR/stats/stats.json`` and ``objects_per_class.png``, ``objects_per_image.png``,
``box_sizes.png``, ``visibility.png`` (the last only when annotations carry ``visibility``).
Works on any COCO file, e.g. ``simreal stats ../shared/real/retail/ycbv_sample``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from synth.errors import AssetError
from synth.fsutil import atomic_write_bytes, atomic_write_json

SIZE_BINS = (0, 16, 32, 64, 96, 128, 256, 512, 100000)  # sqrt(box area) in pixels; 32/96 = COCO S/M/L


def _find_coco(dataset: Path) -> Path:
    if dataset.is_file():
        return dataset
    for name in ("annotations.json", "coco.json", "_annotations.coco.json"):
        if (dataset / name).is_file():
            return dataset / name
    raise AssetError(dataset, "no COCO annotations file here (annotations.json)")


def compute_stats(coco: dict) -> dict:
    """Summary numbers of a COCO dict (plain JSON types)."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = coco["annotations"]
    images = coco["images"]
    per_class = {name: 0 for name in names.values()}
    per_image = {im["id"]: 0 for im in images}
    for a in anns:
        name = names.get(a["category_id"], str(a["category_id"]))
        per_class[name] = per_class.get(name, 0) + 1
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    counts = np.array(list(per_image.values()), dtype=np.int64)
    wh = np.array([a["bbox"][2:4] for a in anns], dtype=np.float64).reshape(-1, 2)
    side = np.sqrt(wh[:, 0] * wh[:, 1]) if len(wh) else np.zeros(0)
    hist, _ = np.histogram(side, bins=SIZE_BINS)
    image_area = {im["id"]: im["width"] * im["height"] for im in images}
    rel = np.array([a["area"] / image_area[a["image_id"]] for a in anns if a["image_id"] in image_area])
    out = {
        "images": len(images),
        "annotations": len(anns),
        "categories": len(names),
        "objects_per_class": per_class,
        "objects_per_image": {
            "mean": round(float(counts.mean()), 4) if counts.size else 0.0,
            "median": float(np.median(counts)) if counts.size else 0.0,
            "max": int(counts.max()) if counts.size else 0,
            "histogram": {
                str(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True), strict=True)
            },
        },
        "box_size_px": {
            "sqrt_area_bins": list(SIZE_BINS),
            "histogram": [int(v) for v in hist],
            "coco_small_medium_large": [
                int((side < 32).sum()),
                int(((side >= 32) & (side < 96)).sum()),
                int((side >= 96).sum()),
            ],
            "median_width": float(np.median(wh[:, 0])) if len(wh) else 0.0,
            "median_height": float(np.median(wh[:, 1])) if len(wh) else 0.0,
            "median_area_fraction": float(np.median(rel)) if rel.size else 0.0,
        },
    }
    vis = np.array([a["visibility"] for a in anns if "visibility" in a], dtype=np.float64)
    if vis.size:
        vh, edges = np.histogram(vis, bins=10, range=(0.0, 1.0))
        out["visibility"] = {
            "mean": round(float(vis.mean()), 4),
            "median": round(float(np.median(vis)), 4),
            "bins": [round(float(e), 2) for e in edges],
            "histogram": [int(v) for v in vh],
        }
    return out


def dataset_stats(dataset: str | Path, out_dir: str | Path | None = None) -> dict:
    """Compute the stats of a dataset directory (or COCO file), write JSON + plots, return the dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coco_path = _find_coco(Path(dataset))
    try:
        coco = json.loads(coco_path.read_text())
    except (OSError, ValueError) as e:
        raise AssetError(coco_path, f"cannot read COCO JSON ({e.__class__.__name__})") from None
    stats = compute_stats(coco)
    out_dir = Path(out_dir) if out_dir is not None else coco_path.parent / "stats"
    anns = coco["annotations"]

    def save(fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(out_dir / name, buf.getvalue())

    per_class = stats["objects_per_class"]
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(per_class) + 2), 3.5))
    ax.bar(range(len(per_class)), list(per_class.values()), color="#4c72b0")
    ax.set_xticks(range(len(per_class)), list(per_class.keys()), rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("annotations")
    ax.set_title("objects per class")
    save(fig, "objects_per_class.png")

    hist = stats["objects_per_image"]["histogram"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([int(k) for k in hist], list(hist.values()), color="#55a868")
    ax.set_xlabel("annotated objects in the image")
    ax.set_ylabel("images")
    ax.set_title("objects per image")
    save(fig, "objects_per_image.png")

    wh = np.array([a["bbox"][2:4] for a in anns], dtype=np.float64).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    if len(wh):
        ax.scatter(wh[:, 0], wh[:, 1], s=4, alpha=0.4, color="#c44e52")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("box width (px)")
    ax.set_ylabel("box height (px)")
    ax.set_title("box sizes")
    save(fig, "box_sizes.png")

    if "visibility" in stats:
        v = stats["visibility"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(np.array(v["bins"][:-1]) + 0.05, v["histogram"], width=0.095, color="#8172b2")
        ax.set_xlabel("visibility (visible / full silhouette pixels)")
        ax.set_ylabel("annotations")
        ax.set_title("occlusion")
        save(fig, "visibility.png")

    atomic_write_json(out_dir / "stats.json", stats)
    return stats
