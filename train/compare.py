"""``write_comparison(summary)``: the sim-to-real report, comparing several detectors on one real test set.

Input is the benchmark summary (``sim2real.json``, written by flows/sim2real.py) and the files it names:
each variant's ``metrics.json`` / ``predictions.json`` (train.evaluate) and the COCO files of the training
and test sets. Nothing here knows how the data was made, so the report can be rebuilt at any time and
works for any COCO sets. Output, next to the summary: ``report.html`` (self-contained, figures inlined as
PNG), ``report.md`` and its figures in ``report_files/``.

What it shows, in the order a reader asks:
  * the headline: AP / AP50 per variant on the real test photos, and each as a fraction of real-only;
  * precision-recall curves of every variant on one plot (IoU 0.50 and 0.75);
  * the same real photos with each variant's detections;
  * why the numbers are what they are: box sizes (relative to the image and in pixels at the detector's
    input) and brightness / saturation / hue of the synthetic versus the real images;
  * per-class AP50 where per-class models were trained; the protocol and provenance.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from synth.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text

STAT_IMAGES = 120  # images sampled per set for the appearance statistics
STAT_SIDE = 128  # ... each downscaled to at most this many pixels
SET_STYLE = {  # colour, line style of each data set in the statistics plots
    "synthetic_plain": ("#fdae61", "-"),
    "synthetic_dr": ("#d73027", "-"),
    "real_train": ("#4575b4", "-"),
    "real_test": ("#313695", "--"),
}
SET_TITLES = {
    "synthetic_plain": "synthetic plain (a)",
    "synthetic_dr": "synthetic DR (b, c)",
    "real_train": "real train",
    "real_test": "real test",
}
VARIANT_COLORS = {"a": "#fdae61", "b": "#d73027", "c": "#7b3294", "d": "#4575b4", "e": "#1a9850"}
COLORS = {"tp": "#1a9850", "fp": "#d73027", "miss": "#fdae61"}


# ---- small helpers --------------------------------------------------------------------------------------
def _read_json(path: str | Path) -> dict | list | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.0f} %"


def _interval(ci, signed: bool = False) -> str:
    if not ci:
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(ci[0])} to {f.format(ci[1])}"


def _png(fig, dpi: int = 100) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _label(rec: dict) -> str:
    return f"({rec['key']}) {rec['name']}"


# ---- data statistics ------------------------------------------------------------------------------------
def box_statistics(coco_path: str | Path, detector_size: int | None = None) -> dict:
    """Per box: relative size sqrt(w h / W H), longer side in pixels at the detector's input (the image
    letterboxed so its longer side is ``detector_size``), and log2 aspect (h / w). Crowd boxes are skipped."""
    from train.data import load_coco

    src = load_coco(coco_path, check_files=False)
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


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (0..1), saturation, value of float RGB pixels [N, 3] (colorsys.rgb_to_hsv, vectorised)."""
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.maximum(mx, 1e-9), 0.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe = np.maximum(delta, 1e-9)
    hue = (
        np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    )
    return np.where(delta > 0, hue, 0.0), sat, mx


def appearance_statistics(coco_path: str | Path, max_images: int = STAT_IMAGES) -> dict:
    """Brightness (Rec. 709 luma), saturation and hue over pixels of an evenly spaced sample of images."""
    from PIL import Image

    from train.data import load_coco

    src = load_coco(coco_path, check_files=False)
    ids = sorted(src.images)
    step = max(1, len(ids) // max_images)
    chosen = [i for i in ids[::step][:max_images] if src.image_path(i).is_file()]
    lum_hist = np.zeros(64)
    sat_hist = np.zeros(64)
    hue_hist = np.zeros(36)
    image_brightness, image_contrast, image_saturation = [], [], []
    for i in chosen:
        with Image.open(src.image_path(i)) as im:
            im = im.convert("RGB")
            im.thumbnail((STAT_SIDE, STAT_SIDE))
            rgb = np.asarray(im, dtype=np.float64).reshape(-1, 3) / 255.0
        lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
        hue, sat, _ = _hsv(rgb)
        lum_hist += np.histogram(lum, bins=64, range=(0, 1))[0] / len(lum)
        sat_hist += np.histogram(sat, bins=64, range=(0, 1))[0] / len(sat)
        coloured = sat > 0.2
        if coloured.any():
            hue_hist += np.histogram(hue[coloured], bins=36, range=(0, 1))[0] / len(hue)
        image_brightness.append(float(lum.mean()))
        image_contrast.append(float(lum.std()))
        image_saturation.append(float(sat.mean()))
    n = max(1, len(chosen))
    return {
        "images_sampled": len(chosen),
        "mean_brightness": round(float(np.mean(image_brightness)), 4) if chosen else None,
        "mean_contrast": round(float(np.mean(image_contrast)), 4) if chosen else None,
        "mean_saturation": round(float(np.mean(image_saturation)), 4) if chosen else None,
        "_hist": {
            "luminance": lum_hist / n,
            "saturation": sat_hist / n,
            "hue": hue_hist / n,
            "image_brightness": np.asarray(image_brightness),
        },
    }


def _public(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if not k.startswith("_")}


# ---- uncertainty ----------------------------------------------------------------------------------------
BOOTSTRAP_SAMPLES = 1000
MAX_DETECTIONS = 100  # per image, as COCOeval's AP


def _detections_table(
    test_coco: str | Path, predictions: list[dict]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class-agnostic matching at IoU 0.5, once: (score, true positive, image index) of every detection,
    sorted by descending score, and labelled objects per image (crowd regions left out)."""
    from train.data import load_coco
    from train.report import match_predictions

    src = load_coco(test_coco, check_files=False)
    ids = sorted(src.images)
    gt = {
        i: [{"bbox": a["bbox"], "category_id": 1} for a in src.anns_by_image[i] if not a.get("iscrowd", 0)]
        for i in ids
    }
    by_image: dict[int, list[dict]] = {i: [] for i in ids}
    for p in predictions:
        if p["image_id"] in by_image:
            by_image[p["image_id"]].append({**p, "category_id": 1})
    for i in ids:
        by_image[i] = sorted(by_image[i], key=lambda p: -p["score"])[:MAX_DETECTIONS]
    matches, _ = match_predictions(gt, by_image)
    scores, tp, image = [], [], []
    for k, i in enumerate(ids):
        hits = matches[i][0]
        for j, p in enumerate(by_image[i]):
            scores.append(p["score"])
            tp.append(j in hits)
            image.append(k)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    n_gt = np.array([len(gt[i]) for i in ids], dtype=np.float64)
    return (
        np.asarray(scores)[order],
        np.asarray(tp, dtype=np.float64)[order],
        np.asarray(image, dtype=np.int64)[order],
        n_gt,
    )


def average_precision(tp: np.ndarray, weight: np.ndarray, n_gt: float) -> float:
    """COCO-style AP: the precision envelope sampled at 101 recall points, detections in score order, each
    counted ``weight`` times (an image drawn twice by the bootstrap counts twice)."""
    if n_gt <= 0:
        return float("nan")
    keep = weight > 0
    tp, weight = tp[keep], weight[keep]
    if not len(tp):
        return 0.0
    tpc = np.cumsum(tp * weight)
    fpc = np.cumsum((1.0 - tp) * weight)
    recall = tpc / n_gt
    precision = tpc / (tpc + fpc)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    return float(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0).mean())


def bootstrap_transfer(
    test_coco: str | Path,
    predictions: dict[str, list[dict]],
    *,
    reference: str = "d",
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict:
    """95 % intervals for every variant's AP50, for the differences the benchmark reports and for the ratio to
    ``reference``, by a paired bootstrap over test images (every variant sees the same resampled images).

    AP50 is recomputed here with the same greedy matching COCOeval uses, class-agnostic; the point estimate
    agrees with COCOeval's AP50 to within rounding when the test set has no crowd regions."""
    tables = {k: _detections_table(test_coco, p) for k, p in predictions.items()}
    n_images = len(next(iter(tables.values()))[3]) if tables else 0
    if not tables or n_images == 0:
        return {}
    n_gt = next(iter(tables.values()))[3]
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(samples) for k in tables}
    for s in range(samples):
        mult = np.bincount(rng.integers(0, n_images, n_images), minlength=n_images).astype(np.float64)
        total = float((mult * n_gt).sum())
        for k, (_, tp, image, _) in tables.items():
            draws[k][s] = average_precision(tp, mult[image], total)
    estimate = {k: average_precision(t[1], np.ones_like(t[1]), float(t[3].sum())) for k, t in tables.items()}

    def ci(values: np.ndarray) -> list[float] | None:
        values = values[np.isfinite(values)]
        return (
            [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]
            if len(values)
            else None
        )

    out = {
        "method": f"paired bootstrap over the {n_images} test images ({samples} resamples, seed {seed}), "
        "class-agnostic AP50",
        "samples": samples,
        "AP50": {k: {"estimate": round(estimate[k], 4), "ci95": ci(draws[k])} for k in tables},
        "differences": {},
        "ratio_to_reference": {},
    }
    for a, b, name in (
        ("c", "b", "dann (c - b)"),
        ("b", "a", "randomization (b - a)"),
        ("e", "d", "fine-tuning (e - d)"),
    ):
        if a in draws and b in draws:
            out["differences"][name] = {
                "estimate": round(estimate[a] - estimate[b], 4),
                "ci95": ci(draws[a] - draws[b]),
            }
    if reference in draws:
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in draws:
                if k != reference:
                    ratio = draws[k] / draws[reference]
                    est = estimate[k] / estimate[reference] if estimate[reference] else float("nan")
                    out["ratio_to_reference"][k] = {
                        "estimate": round(est, 4) if math.isfinite(est) else None,
                        "ci95": ci(ratio),
                    }
    return out


# ---- figures --------------------------------------------------------------------------------------------
def scores_figure(variants: dict[str, dict]) -> bytes:
    import matplotlib.pyplot as plt

    keys = list(variants)
    x = np.arange(len(keys))
    ap = [variants[k]["bbox"].get("AP") or 0.0 for k in keys]
    ap50 = [variants[k]["bbox"].get("AP50") or 0.0 for k in keys]
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(keys), 3.4))
    ax.bar(x - 0.19, ap50, 0.38, label="AP50", color=[VARIANT_COLORS.get(k, "#888") for k in keys])
    ax.bar(
        x + 0.19,
        ap,
        0.38,
        label="AP (0.50:0.95)",
        color=[VARIANT_COLORS.get(k, "#888") for k in keys],
        alpha=0.45,
        hatch="//",
    )
    for xi, a50, a in zip(x, ap50, ap, strict=True):
        ax.text(xi - 0.19, a50, f"{a50:.3f}", ha="center", va="bottom", fontsize=7)
        ax.text(xi + 0.19, a, f"{a:.3f}", ha="center", va="bottom", fontsize=7)
    if "d" in variants:
        ax.axhline(
            variants["d"]["bbox"].get("AP50") or 0.0,
            color=VARIANT_COLORS["d"],
            ls=":",
            lw=1,
            label="real-only AP50",
        )
    ax.set_xticks(x, [_label(variants[k]) for k in keys], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("box AP on the real test photos")
    ax.set_ylim(0, max(0.05, max(ap50 + ap) * 1.25))
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def pr_figure(variants: dict[str, dict]) -> bytes | None:
    """Precision-recall of every variant overlaid (class-agnostic; mean over classes for per-class models)."""
    import matplotlib.pyplot as plt

    curves = {}
    for k, rec in variants.items():
        m = _read_json(rec["metrics_file"])
        block = (m or {}).get("bbox") or {}
        pcs = block.get("pr_curves") or {}
        if pcs:
            recall = np.array(block.get("recall_points") or np.linspace(0, 1, 101))
            curves[k] = (
                recall,
                np.mean([c["iou50"] for c in pcs.values()], axis=0),
                np.mean([c["iou75"] for c in pcs.values()], axis=0),
            )
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for idx, (ax, iou) in enumerate(zip(axes, ("0.50", "0.75"), strict=True)):
        for k, (recall, p50, p75) in curves.items():
            rec = variants[k]
            ap = rec["bbox"].get("AP50" if idx == 0 else "AP75")
            ax.plot(
                recall,
                p50 if idx == 0 else p75,
                color=VARIANT_COLORS.get(k, "#888"),
                lw=1.8,
                label=f"{_label(rec)}  AP{iou[2:]} {_fmt(ap)}",
            )
        ax.set_title(f"IoU {iou}", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    return _png(fig)


def _load_predictions(rec: dict) -> tuple[dict[int, list[dict]], set[int]]:
    metrics = _read_json(rec["metrics_file"]) or {}
    known = {c["id"] for c in metrics.get("categories", [])}
    preds = _read_json(rec["predictions_file"]) or []
    by_image: dict[int, list[dict]] = {}
    for p in preds:
        if p["category_id"] in known:
            by_image.setdefault(p["image_id"], []).append(p)
    return by_image, known


def examples_figure(
    variants: dict[str, dict], test_coco: str | Path, n_images: int
) -> tuple[bytes | None, str]:
    """The same real test photos (columns) under each variant's detections (rows)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    from train.data import build_label_map, load_coco
    from train.evaluate import remapped_ground_truth
    from train.report import match_predictions

    src = load_coco(test_coco, check_files=False)
    ids = sorted(src.images)
    with_objects = [i for i in ids if any(not a.get("iscrowd", 0) for a in src.anns_by_image[i])]
    if not with_objects or not variants:
        return None, "no labelled test image"
    step = max(1, len(with_objects) // n_images)
    chosen = [i for i in with_objects[::step][:n_images] if src.image_path(i).is_file()]
    if not chosen:
        return None, "the test photos are not available on this machine"
    gt, _ = remapped_ground_truth(src, build_label_map(src.categories, class_agnostic="object"), chosen)
    gt_by_image: dict[int, list[dict]] = {i: [] for i in chosen}
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            gt_by_image[a["image_id"]].append({**a, "category_id": 1})
    rows, cols = len(variants), len(chosen)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols + 0.6, 2.05 * rows), squeeze=False)
    thresholds = {}
    for r, (k, rec) in enumerate(variants.items()):
        preds, _ = _load_predictions(rec)
        # class-agnostic view: every detection is "an object"; the F1-best threshold over the whole test set
        all_preds = {i: [{**p, "category_id": 1} for p in preds.get(i, [])] for i in ids}
        all_gt = {
            i: [
                {"bbox": a["bbox"], "category_id": 1} for a in src.anns_by_image[i] if not a.get("iscrowd", 0)
            ]
            for i in ids
        }
        _, thr = match_predictions(all_gt, all_preds)
        thresholds[k] = thr
        kept = {i: [p for p in all_preds[i] if p["score"] >= thr] for i in chosen}
        matches, _ = match_predictions(gt_by_image, kept)
        for c, image_id in enumerate(chosen):
            ax = axes[r][c]
            with Image.open(src.image_path(image_id)) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            tp, used = matches[image_id]
            for j, g in enumerate(gt_by_image[image_id]):
                if j not in used:
                    x, y, w, h = g["bbox"]
                    ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=COLORS["miss"], lw=1.8, ls=":"))
            for m, p in enumerate(kept[image_id]):
                x, y, w, h = p["bbox"]
                kind = "tp" if m in tp else "fp"
                ax.add_patch(
                    Rectangle(
                        (x, y), w, h, fill=False, ec=COLORS[kind], lw=1.4, ls="-" if kind == "tp" else "--"
                    )
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{_label(rec)}\nscore >= {thr:.2f}", fontsize=7)
    fig.tight_layout()
    caption = (
        f"{cols} real test photos (evenly spaced among the {len(with_objects)} with labelled objects), one row "
        "per variant. Detections at or above the score that maximises that variant's F1 on the whole test "
        "split (IoU 0.5; chosen for display only, scores never use a threshold). Green solid = correct, red "
        "dashed = false positive, orange dotted = missed labelled object."
    )
    return _png(fig, dpi=72), caption


def box_size_figure(stats: dict[str, dict], detector_size: int | None) -> bytes | None:
    import matplotlib.pyplot as plt

    if not any(s["boxes"] for s in stats.values()):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    specs = [
        ("relative", "box size / image size  (sqrt of areas)", np.linspace(0, 1, 41)),
        (
            "pixels",
            f"longer box side, px at the detector's {detector_size} px input"
            if detector_size
            else "longer box side, px",
            None,
        ),
        ("aspect", "log2(height / width)", np.linspace(-4, 4, 41)),
    ]
    for ax, (key, title, bins) in zip(axes, specs, strict=True):
        values = {name: s["_arrays"][key] for name, s in stats.items() if len(s["_arrays"][key])}
        if bins is None:
            hi = max(float(np.percentile(v, 99)) for v in values.values()) if values else 1.0
            bins = np.linspace(0, hi * 1.05, 41)
        for name, v in values.items():
            color, ls = SET_STYLE.get(name, ("#888", "-"))
            ax.hist(
                v,
                bins=bins,
                density=True,
                histtype="step",
                lw=1.8,
                color=color,
                ls=ls,
                label=f"{SET_TITLES.get(name, name)} (median {np.median(v):.2f})",
            )
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def appearance_figure(stats: dict[str, dict]) -> bytes | None:
    import matplotlib.pyplot as plt

    if not any(s["images_sampled"] for s in stats.values()):
        return None
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    panels = [
        ("luminance", "pixel brightness (Rec. 709 luma)", np.linspace(0, 1, 65)),
        ("image_brightness", "mean brightness per image", np.linspace(0, 1, 26)),
        ("saturation", "pixel saturation", np.linspace(0, 1, 65)),
        ("hue", "hue of coloured pixels (saturation > 0.2)", np.linspace(0, 360, 37)),
    ]
    for ax, (key, title, edges) in zip(axes, panels, strict=True):
        for name, s in stats.items():
            if not s["images_sampled"]:
                continue
            color, ls = SET_STYLE.get(name, ("#888", "-"))
            h = s["_hist"][key]
            if key == "image_brightness":
                ax.hist(
                    h,
                    bins=edges,
                    density=True,
                    histtype="step",
                    lw=1.8,
                    color=color,
                    ls=ls,
                    label=SET_TITLES.get(name, name),
                )
            else:
                centres = (edges[:-1] + edges[1:]) / 2
                ax.plot(
                    centres,
                    h / max(h.sum(), 1e-12),
                    color=color,
                    ls=ls,
                    lw=1.8,
                    label=SET_TITLES.get(name, name),
                )
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def per_class_figure(per_class: dict) -> bytes | None:
    import matplotlib.pyplot as plt

    variants = per_class.get("variants") or {}
    classes = per_class.get("classes") or []
    if not variants or not classes:
        return None
    keys = list(variants)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(classes) * len(keys) / 2 + 2), 3.4))
    width = 0.8 / len(keys)
    x = np.arange(len(classes))
    for j, k in enumerate(keys):
        vals = [(variants[k]["per_class"].get(c) or {}).get("AP50") or 0.0 for c in classes]
        ax.bar(
            x + (j - (len(keys) - 1) / 2) * width,
            vals,
            width,
            color=VARIANT_COLORS.get(k, "#888"),
            label=_label(variants[k]),
        )
    ax.set_xticks(x, classes, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("AP50 per class")
    ax.legend(fontsize=7, ncol=min(5, len(keys)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ---- the document ---------------------------------------------------------------------------------------
class _Doc:
    """HTML and Markdown built side by side so they say the same thing."""

    def __init__(self, files_dir: Path):
        self.html: list[str] = []
        self.md: list[str] = []
        self.files_dir = files_dir
        self.images: dict[str, bytes] = {}

    def h(self, level: int, text: str) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def p(self, text: str, cls: str = "") -> None:
        self.html.append(f"<p class='{cls}'>{html.escape(text)}</p>")
        self.md.append(("> " if cls in ("summary", "warn") else "") + text + "\n")

    def table(self, header: list[str], rows: list[list]) -> None:
        self.html.append(
            "<table><tr>"
            + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            + "</table>"
        )
        esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in rows]
        self.md.append(
            "| "
            + " | ".join(header)
            + " |\n|"
            + "---|" * len(header)
            + "\n"
            + "\n".join("| " + " | ".join(r) + " |" for r in esc)
            + "\n"
        )

    def figure(self, name: str, png: bytes | None, caption: str) -> None:
        if png is None:
            self.p(f"(no figure: {caption})", "note")
            return
        self.images[name] = png
        b64 = base64.b64encode(png).decode("ascii")
        self.html.append(
            f"<figure><img src='data:image/png;base64,{b64}' alt='{html.escape(name)}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.md.append(f"![{name}]({self.files_dir.name}/{name}.png)\n\n{caption}\n")


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:24px auto;padding:0 16px;
color:#222;line-height:1.45}h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;
margin-top:1.8em}table{border-collapse:collapse;margin:8px 0 16px;font-size:0.9em}th,td{border:1px solid #ccc;
padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.summary{background:#f5f9ff;border-left:4px solid #4575b4;padding:10px 14px;font-size:1.05em}
.warn{background:#fff6e5;border-left:4px solid #f0a030;padding:8px 14px}.note{color:#666;font-size:0.9em}
figure{margin:10px 0 22px}img{max-width:100%}figcaption{color:#555;font-size:0.88em}
"""


def headline_sentence(summary: dict) -> str:
    """The sentence the issue asks for, with this run's numbers (or what is missing for it)."""
    v = summary.get("variants") or {}
    tr = summary.get("transfer") or {}
    rel = tr.get("AP50_relative_to_real_only") or {}
    test = (summary.get("datasets") or {}).get("real_test") or {}
    name = summary.get("class_name", "object")
    parts = []
    best_syn = max(
        (k for k in v if v[k].get("synthetic_only")),
        default=None,
        key=lambda k: v[k]["bbox"].get("AP50") or -1,
    )
    meaningful = tr.get("ratios_meaningful", True)
    if best_syn:
        ratio = ""
        if "d" in v and meaningful:
            ratio = (
                f", {_pct(rel.get(best_syn))} of what the detector trained on the real photos reaches "
                f"(AP50 {_fmt(v['d']['bbox'].get('AP50'))})"
            )
        elif "d" in v:
            ratio = (
                f"; the real-only reference reaches AP50 {_fmt(v['d']['bbox'].get('AP50'))}, below "
                f"{tr.get('min_reference_AP50')}, i.e. chance level at this budget, so no ratio is meaningful"
            )
        parts.append(
            f"Trained only on rendered images, the best synthetic variant ({_label(v[best_syn])}) finds the "
            f"{name}s in {test.get('images', '?')} real test photos with AP50 "
            f"{_fmt(v[best_syn]['bbox'].get('AP50'))}{ratio}."
        )
    if tr.get("dann_gain_AP50") is not None:
        parts.append(f"Domain adaptation (DANN) changes AP50 by {tr['dann_gain_AP50']:+.3f} over (b).")
    if tr.get("randomization_gain_AP50") is not None:
        parts.append(
            f"Domain randomization changes AP50 by {tr['randomization_gain_AP50']:+.3f} over plain rendering."
        )
    if tr.get("finetune_gain_AP50") is not None:
        parts.append(
            f"Pretraining on synthetic data, then fine-tuning on the real photos, changes AP50 by "
            f"{tr['finetune_gain_AP50']:+.3f} over real-only."
        )
    return " ".join(parts) or "No variant was evaluated."


def write_comparison(summary_path: str | Path, *, examples: int = 5) -> Path:
    """Write report.html / report.md / report_files/ next to ``summary_path``; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    summary_path = Path(summary_path)
    summary = _read_json(summary_path)
    if not isinstance(summary, dict) or "variants" not in summary:
        raise ConfigError(summary_path, "not a benchmark summary (expected sim2real.json with 'variants')")
    out = summary_path.parent
    files_dir = out / "report_files"
    doc = _Doc(files_dir)
    variants: dict[str, dict] = summary["variants"]
    datasets: dict[str, dict] = summary.get("datasets") or {}
    protocol = summary.get("protocol") or {}
    budget = protocol.get("same_budget") or {}
    task = summary.get("task", "?")

    doc.h(1, f"Sim-to-real benchmark: {task} ({summary.get('scale', '?')} scale)")
    doc.p(
        f"Class-agnostic '{summary.get('class_name')}' detection, {budget.get('model')} at {budget.get('image_size')} px, "
        f"{budget.get('steps')} steps x {budget.get('batch_size')} images per variant, seed {protocol.get('seed')}. "
        f"Generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} from {summary_path.name}.",
        "note",
    )
    doc.p(headline_sentence(summary), "summary")
    if str(protocol.get("weights_source", "")).startswith("random init"):
        doc.p(
            "Every model here starts from random initialisation: no pretrained weights were available on this "
            "machine (nothing can be downloaded). Expect low absolute numbers, at smoke scale in particular; the "
            "comparison between variants is what this run measures. Put torchvision's weight files in the torch "
            "hub cache to start from COCO / ImageNet weights.",
            "warn",
        )

    # Headline table.
    doc.h(2, "Accuracy on the real test photos")
    test = datasets.get("real_test") or {}
    doc.p(
        f"Test set: {test.get('images', '?')} real photos with {test.get('objects', '?')} labelled objects "
        f"({test.get('path', '?')}); the same split for every variant. AP = COCO box mAP over IoU 0.50:0.95; "
        "AP50 / AP75 at one IoU; AR100 = recall with 100 detections per image.",
        "note",
    )
    rel = (summary.get("transfer") or {}).get("AP50_relative_to_real_only") or {}
    unc = summary.get("uncertainty") or {}
    rows = []
    for k, r in variants.items():
        b = r["bbox"]
        ratio_ci = ((unc.get("ratio_to_reference") or {}).get(k) or {}).get("ci95")
        meaningful = (summary.get("transfer") or {}).get("ratios_meaningful", True)
        rows.append(
            [
                r["title"],
                f"{r.get('train_images', '?')} {'rendered' if r.get('synthetic_only') else 'real'}",
                _fmt(b.get("AP")),
                _fmt(b.get("AP50")),
                _interval(b.get("AP50_ci95")),
                _fmt(b.get("AP75")),
                _fmt(b.get("AR100")),
                "reference"
                if k == "d"
                else "reference at chance"
                if not meaningful
                else _pct(rel.get(k)) + (f" ({_pct(ratio_ci[0])}-{_pct(ratio_ci[1])})" if ratio_ci else ""),
                _fmt(r.get("train_s"), 0),
            ]
        )
    doc.table(
        [
            "variant",
            "training images",
            "AP",
            "AP50",
            "AP50 95% interval",
            "AP75",
            "AR100",
            "AP50 / real-only (95% interval)",
            "training s",
        ],
        rows,
    )
    if unc.get("differences"):
        doc.p(
            "Differences in AP50, with 95 % intervals: "
            + "; ".join(
                f"{name} {d['estimate']:+.3f} ({_interval(d['ci95'], signed=True)})"
                for name, d in unc["differences"].items()
            )
            + f". Intervals: {unc.get('method')}; they cover the choice of test photos, not the spread between "
            "training runs with other seeds, so a difference whose interval includes 0 is not established.",
            "note",
        )
    doc.figure(
        "scores",
        scores_figure(variants),
        "Box AP50 (solid) and AP over IoU 0.50:0.95 (hatched) per variant; "
        "dotted line: the real-only reference (d).",
    )
    doc.figure(
        "pr_curves",
        pr_figure(variants),
        "Precision-recall on the real test split, every variant overlaid "
        "(COCOeval, all object sizes, up to 100 detections per image).",
    )
    png, caption = (
        examples_figure(variants, test.get("path", ""), examples)
        if test.get("path")
        else (None, "no test set")
    )
    doc.figure("examples", png, caption)

    # Per class.
    pc = summary.get("per_class") or {}
    if pc.get("variants"):
        doc.h(2, "Per class (models trained on the shared classes)")
        classes = pc.get("classes") or []
        doc.p(
            f"{len(classes)} categories are named alike in the catalog and the real set ({', '.join(classes)}); "
            "per-class models were trained on them with the same budget, and real objects of other categories "
            "are left out of this evaluation.",
            "note",
        )
        pv = pc["variants"]
        doc.table(
            ["class", "test objects", *[_label(r) for r in pv.values()]],
            [
                [
                    c,
                    next(iter(pv.values()))["per_class"].get(c, {}).get("gt", 0),
                    *[_fmt((r["per_class"].get(c) or {}).get("AP50")) for r in pv.values()],
                ]
                for c in classes
            ]
            + [["mean AP50", "", *[_fmt(r["bbox"].get("AP50")) for r in pv.values()]]],
        )
        doc.figure("per_class", per_class_figure(pc), "AP50 per class and variant.")
    elif pc.get("skipped"):
        doc.p(f"Per-class models: not trained ({pc['skipped']}).", "note")
    elif pc.get("enabled") is False:
        doc.p(
            "Per-class models: not trained at this scale (class-agnostic only; pass --per-class to add them).",
            "note",
        )

    # Data statistics.
    doc.h(2, "Synthetic versus real data")
    order = [n for n in ("synthetic_plain", "synthetic_dr", "real_train", "real_test") if n in datasets]
    box_stats = {n: box_statistics(datasets[n]["path"], budget.get("image_size")) for n in order}
    look_stats = {n: appearance_statistics(datasets[n]["path"]) for n in order}
    doc.table(
        [
            "set",
            "images",
            "boxes",
            "boxes / image",
            "relative size p10 / median / p90",
            "longer side px at input (median)",
            "brightness",
            "contrast",
            "saturation",
            "path",
        ],
        [
            [
                SET_TITLES.get(n, n),
                box_stats[n]["images"],
                box_stats[n]["boxes"],
                box_stats[n]["boxes_per_image"],
                " / ".join(_fmt(v, 2) for v in (box_stats[n]["relative_size"] or {}).values()) or "n/a",
                _fmt((box_stats[n]["pixels_at_input"] or {}).get(50), 0),
                _fmt(look_stats[n]["mean_brightness"], 2),
                _fmt(look_stats[n]["mean_contrast"], 2),
                _fmt(look_stats[n]["mean_saturation"], 2),
                datasets[n]["path"],
            ]
            for n in order
        ],
    )
    doc.figure(
        "box_sizes",
        box_size_figure(box_stats, budget.get("image_size")),
        "Box-size distributions: object scale relative to the image, the longer box side in pixels as the "
        "detector sees it (after letterboxing to its input size), and box aspect ratio. (a) and (b) render "
        "the same scenes with different looks, so their box curves coincide.",
    )
    doc.figure(
        "appearance",
        appearance_figure(look_stats),
        f"Brightness, saturation and hue over the pixels of up to {STAT_IMAGES} images per set (downscaled to "
        f"{STAT_SIDE} px). Curves that overlap mean the renderer matches the photos in that respect.",
    )
    stats_out = {n: {"boxes": _public(box_stats[n]), "appearance": _public(look_stats[n])} for n in order}

    # Protocol and provenance.
    doc.h(2, "Protocol")
    for note in protocol.get("notes", []):
        doc.p(note, "note")
    split = protocol.get("split") or {}
    leak = protocol.get("leak_check") or {}
    doc.table(
        ["", ""],
        [
            ["real split", split.get("how", "?")],
            [
                "leak check",
                f"{leak.get('same_files_count', '?')} shared files, {leak.get('identical_files_count', '?')} "
                f"identical files, {leak.get('shared_photo_groups_count', '?')} photos with copies on both "
                f"sides, {leak.get('near_duplicates_count', '?')} near-identical pictures (thumbnail "
                f"correlation >= {leak.get('near_duplicate_correlation', '?')})",
            ],
            ["model selection", protocol.get("model_selection", "?")],
            ["same budget", ", ".join(f"{k} {v}" for k, v in budget.items())],
        ],
    )
    doc.table(
        [
            "variant",
            "training data",
            "images",
            "objects",
            "augment",
            "DANN target images",
            "starts from",
            "steps",
            "batch",
            "seed",
            "training",
        ],
        [
            [
                r["title"],
                r["train_data"],
                r.get("train_images"),
                r.get("train_objects"),
                "on" if r["augment"] else "off",
                r.get("target_images") or "-",
                f"({r['init_from']}) final weights" if r.get("init_from") else "weights below",
                r["steps"],
                r["batch_size"],
                r["seed"],
                r.get("training", "?"),
            ]
            for r in variants.values()
        ],
    )

    doc.h(2, "Provenance")
    prov = summary.get("provenance") or {}
    git = prov.get("git") or {}
    device = prov.get("device") or {}
    catalog = summary.get("catalog") or {}
    timings = summary.get("timings") or {}
    doc.table(
        ["", ""],
        [
            ["weights", protocol.get("weights_source", "?")],
            [
                "device",
                f"{device.get('gpu') or device.get('cpu', '')} ({device.get('device', '?')}, "
                f"{device.get('cpu_threads', '?')} CPU threads)",
            ],
            [
                "git commit",
                f"{git.get('commit', 'unknown')}" + (" (uncommitted changes)" if git.get("dirty") else ""),
            ],
            ["seed", protocol.get("seed")],
            [
                "catalog",
                f"{catalog.get('root', '?')} ({catalog.get('entries', '?')} entries: "
                f"{'; '.join(catalog.get('sources', []))})",
            ],
            [
                "synthetic sets",
                "; ".join(
                    f"{SET_TITLES.get(n, n)}: {datasets[n]['images']} images from "
                    f"{Path(datasets[n].get('config', '?')).name} ({datasets[n].get('look')} looks)"
                    for n in ("synthetic_plain", "synthetic_dr")
                    if n in datasets
                ),
            ],
            ["packages", ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())],
            [
                "wall time",
                ", ".join(
                    f"{k.removesuffix('_s')} {v:.0f} s"
                    for k, v in timings.items()
                    if isinstance(v, int | float)
                ),
            ],
            ["command", prov.get("command", "?")],
        ],
    )

    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(f"simreal sim2real {task}")
        + f"</title><style>{CSS}</style></head><body>"
        + "\n".join(doc.html)
        + "</body></html>\n"
    )
    for name, png in doc.images.items():
        atomic_write_bytes(files_dir / f"{name}.png", png)
    atomic_write_text(out / "report.md", "\n".join(doc.md))
    atomic_write_text(out / "report.html", page)
    atomic_write_json(out / "data_statistics.json", stats_out)
    return out / "report.html"
