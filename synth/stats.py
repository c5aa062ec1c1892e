"""``simreal stats DIR``: what a dataset contains, as JSON and plots, to compare a synthetic dataset with a
real test set before training (class balance, crowding, object scale, occlusion).

Writes ``DIR/stats/stats.json`` and ``objects_per_class.png``, ``objects_per_image.png``,
``box_sizes.png``, ``visibility.png`` (the last only when annotations carry ``visibility``).
Works on any COCO file, e.g. ``simreal stats ../shared/real/retail/ycbv_sample``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from synth.coco import CocoSource, iter_annotations, load_coco, summarise
from synth.fsutil import atomic_write_bytes, atomic_write_json


def compute_stats(source: CocoSource) -> dict:
    """The numbers of ``stats.json``: synth.coco.summarise in the layout this file has always had."""
    summary = summarise(source)
    per_image = {k: v for k, v in summary["objects_per_image"].items() if k != "images_without_objects"}
    out = {
        "images": summary["images"],
        "annotations": summary["annotations"],
        "categories": len(source.categories),
        "objects_per_class": summary["per_category"],
        "objects_per_image": per_image,
        "box_size_px": summary["box_size_px"],
    }
    if "visibility" in summary:
        out["visibility"] = summary["visibility"]
    return out


def dataset_stats(dataset: str | Path, out_dir: str | Path | None = None) -> dict:
    """Compute the stats of a dataset directory (or COCO file), write JSON + plots, return the dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = load_coco(dataset, check_files=False)
    stats = compute_stats(source)
    out_dir = Path(out_dir) if out_dir is not None else source.ann_file.parent / "stats"

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

    wh = np.array([a["bbox"][2:4] for _, a in iter_annotations(source)], dtype=np.float64).reshape(-1, 2)
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
