"""``write_comparison(summary)``: the sim-to-real report, comparing several detectors on one real test set.

Input is the benchmark summary (``sim2real.json``, written by flows/sim2real.py) and the files it names:
each variant's ``metrics.json`` / ``predictions.json`` (train.evaluate) and the COCO files of the training
and test sets. Nothing here knows how the data was made, so the report can be rebuilt at any time and
works for any COCO sets. Output, next to the summary: ``report.html`` (self-contained, figures inlined as
PNG), ``report.md`` and its figures in ``report_files/``.

Variants are shown in the summary's order and coloured by position; each record's ``role`` says what it
is compared as: ``synthetic`` (trained on rendered images only), ``real`` (the real-only reference) or
``finetuned``.

What it shows, in the order a reader asks:
  * the headline: AP / AP50 per variant on the real test photos, and each as a fraction of real-only;
  * precision-recall curves of every variant on one plot (IoU 0.50 and 0.75);
  * the same real photos with each variant's detections;
  * why the numbers are what they are: box sizes (relative to the image and in pixels at the detector's
    input) and brightness / saturation / hue of the synthetic versus the real images;
  * per-class AP50 where per-class models were trained; the protocol and provenance.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from synth.coco import box_statistics, load_coco
from synth.errors import ConfigError
from synth.fsutil import atomic_write_json
from synth.match.letterbox import bars_of
from train.document import Document, fmt, pct, png, read_json
from train.figures import draw_outcomes
from train.metrics import detections_at_best_f1

STAT_IMAGES = 120  # images sampled per set for the appearance statistics
STAT_SIDE = 128  # ... each downscaled to at most this many pixels
SET_STYLE = {  # colour, line style of each data set in the statistics plots
    "synthetic_plain": ("#fdae61", "-"),
    "synthetic_dr": ("#d73027", "-"),
    "real_train": ("#4575b4", "-"),
    "real_test": ("#313695", "--"),
}
SET_TITLES = {
    "synthetic_plain": "synthetic plain",
    "synthetic_dr": "synthetic DR",
    "real_train": "real train",
    "real_test": "real test",
}
VARIANT_PALETTE = ("#fdae61", "#d73027", "#7b3294", "#4575b4", "#1a9850", "#8c510a", "#01665e", "#c51b7d")


# ---- variants, by role ----------------------------------------------------------------------------------
def variant_colors(keys) -> dict[str, str]:
    """One palette colour per variant, by position, so every figure colours a variant alike."""
    return {k: VARIANT_PALETTE[i % len(VARIANT_PALETTE)] for i, k in enumerate(keys)}


def reference_key(variants: dict[str, dict]) -> str | None:
    """The real-only variant every other one is measured against (the first with role 'real')."""
    return next((k for k, r in variants.items() if r.get("role") == "real"), None)


def set_titles(variants: dict[str, dict]) -> dict[str, str]:
    """Data set titles; a synthetic set names the synthetic-only variants trained on it, e.g. '(b, c)'."""
    titles = {}
    for name, title in SET_TITLES.items():
        keys = [
            k
            for k, r in variants.items()
            if r.get("role") == "synthetic" and r.get("train_data_kind") == name
        ]
        titles[name] = f"{title} ({', '.join(keys)})" if keys else title
    return titles


def _adaptation_baseline(variants: dict[str, dict]) -> str | None:
    """The synthetic-only variant a domain-adapted one (DANN, self-training) adds adaptation to: same
    training data, no adaptation."""
    synthetic = {k: r for k, r in variants.items() if r.get("role") == "synthetic"}
    for r in synthetic.values():
        if _adapts(r):
            same_data = [
                k
                for k, o in synthetic.items()
                if not _adapts(o) and o.get("train_data_kind") == r.get("train_data_kind")
            ]
            return same_data[0] if same_data else None
    return None


# ---- small helpers --------------------------------------------------------------------------------------
def _adapts(record: dict) -> bool:
    return bool(record.get("dann") or record.get("self_training"))


def _adaptation_methods(variants: dict[str, dict]) -> str:
    """How the domain-adapted variant adapts, e.g. "DANN + self-training"."""
    r = next((r for r in variants.values() if _adapts(r)), {})
    names = [name for name, on in (("DANN", r.get("dann")), ("self-training", r.get("self_training"))) if on]
    return " + ".join(names) or "none"


def _interval(ci, signed: bool = False) -> str:
    if not ci:
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(ci[0])} to {f.format(ci[1])}"


def _label(rec: dict) -> str:
    return f"({rec['key']}) {rec['name']}"


# ---- data statistics ------------------------------------------------------------------------------------
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
    """Brightness (Rec. 709 luma), saturation and hue over pixels of an evenly spaced sample of images, and
    the share of them padded to the square with plain bars (``synth.match.letterbox``)."""
    from PIL import Image

    src = load_coco(coco_path, check_files=False)
    ids = sorted(src.images)
    step = max(1, len(ids) // max_images)
    chosen = [i for i in ids[::step][:max_images] if src.image_path(i).is_file()]
    lum_hist = np.zeros(64)
    sat_hist = np.zeros(64)
    hue_hist = np.zeros(36)
    image_brightness, image_contrast, image_saturation, letterboxed = [], [], [], []
    for i in chosen:
        with Image.open(src.image_path(i)) as im:
            im = im.convert("RGB")
            letterboxed.append(bars_of(np.asarray(im)) is not None)
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
        "letterboxed_share": round(float(np.mean(letterboxed)), 4) if chosen else None,
        "_hist": {
            "luminance": lum_hist / n,
            "saturation": sat_hist / n,
            "hue": hue_hist / n,
            "image_brightness": np.asarray(image_brightness),
        },
    }


def _public(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if not k.startswith("_")}


# ---- figures --------------------------------------------------------------------------------------------
def scores_figure(variants: dict[str, dict], colors: dict[str, str]) -> bytes:
    """AP50 and AP bars per variant, with the real-only reference's AP50 as a dotted line."""
    import matplotlib.pyplot as plt

    keys = list(variants)
    x = np.arange(len(keys))
    ap = [variants[k]["bbox"].get("AP") or 0.0 for k in keys]
    ap50 = [variants[k]["bbox"].get("AP50") or 0.0 for k in keys]
    bar_colors = [colors[k] for k in keys]
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(keys), 3.4))
    ax.bar(x - 0.19, ap50, 0.38, label="AP50", color=bar_colors)
    ax.bar(x + 0.19, ap, 0.38, label="AP (0.50:0.95)", color=bar_colors, alpha=0.45, hatch="//")
    for xi, a50, a in zip(x, ap50, ap, strict=True):
        ax.text(xi - 0.19, a50, f"{a50:.3f}", ha="center", va="bottom", fontsize=7)
        ax.text(xi + 0.19, a, f"{a:.3f}", ha="center", va="bottom", fontsize=7)
    ref = reference_key(variants)
    if ref is not None:
        ax.axhline(
            variants[ref]["bbox"].get("AP50") or 0.0, color=colors[ref], ls=":", lw=1, label="real-only AP50"
        )
    ax.set_xticks(x, [_label(variants[k]) for k in keys], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("box AP on the real test photos")
    ax.set_ylim(0, max(0.05, max(ap50 + ap) * 1.25))
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return png(fig, dpi=100)


def pr_figure(variants: dict[str, dict], colors: dict[str, str]) -> bytes | None:
    """Precision-recall of every variant overlaid (class-agnostic; mean over classes for per-class models)."""
    import matplotlib.pyplot as plt

    curves = {}
    for k, rec in variants.items():
        m = read_json(rec["metrics_file"])
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
                color=colors[k],
                lw=1.8,
                label=f"{_label(rec)}  AP{iou[2:]} {fmt(ap)}",
            )
        ax.set_title(f"IoU {iou}", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    return png(fig, dpi=100)


def _load_predictions(rec: dict) -> dict[int, list[dict]]:
    """A variant's test-set predictions by image, only of the categories its evaluation scored."""
    metrics = read_json(rec["metrics_file"]) or {}
    known = {c["id"] for c in metrics.get("categories", [])}
    preds = read_json(rec["predictions_file"]) or []
    by_image: dict[int, list[dict]] = {}
    for p in preds:
        if p["category_id"] in known:
            by_image.setdefault(p["image_id"], []).append(p)
    return by_image


def _set_histogram(ax, name: str, values, bins, label: str) -> None:
    """A data set's distribution as a step outline in that set's colour and line style."""
    color, ls = SET_STYLE.get(name, ("#888", "-"))
    ax.hist(values, bins=bins, density=True, histtype="step", lw=1.8, color=color, ls=ls, label=label)


def box_size_figure(
    stats: dict[str, dict], detector_size: int | None, titles: dict[str, str]
) -> bytes | None:
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
            _set_histogram(ax, name, v, bins, f"{titles.get(name, name)} (median {np.median(v):.2f})")
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return png(fig, dpi=100)


def appearance_figure(stats: dict[str, dict], titles: dict[str, str]) -> bytes | None:
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
            h = s["_hist"][key]
            if key == "image_brightness":
                _set_histogram(ax, name, h, edges, titles.get(name, name))
            else:
                color, ls = SET_STYLE.get(name, ("#888", "-"))
                centres = (edges[:-1] + edges[1:]) / 2
                ax.plot(
                    centres,
                    h / max(h.sum(), 1e-12),
                    color=color,
                    ls=ls,
                    lw=1.8,
                    label=titles.get(name, name),
                )
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png(fig, dpi=100)


def examples_figure(
    variants: dict[str, dict], test_coco: str | Path, n_images: int
) -> tuple[bytes | None, str]:
    """The same real test photos (columns) under each variant's detections (rows)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    src = load_coco(test_coco, check_files=False)
    ids = sorted(src.images)
    # class-agnostic view: every labelled object and every detection is "an object"
    gt = {
        i: [{"bbox": a["bbox"], "category_id": 1} for a in src.anns_by_image[i] if not a.get("iscrowd", 0)]
        for i in ids
    }
    with_objects = [i for i in ids if gt[i]]
    if not with_objects or not variants:
        return None, "no labelled test image"
    step = max(1, len(with_objects) // n_images)
    chosen = [i for i in with_objects[::step][:n_images] if src.image_path(i).is_file()]
    if not chosen:
        return None, "the test photos are not available on this machine"
    rows, cols = len(variants), len(chosen)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols + 0.6, 2.05 * rows), squeeze=False)
    for r, rec in enumerate(variants.values()):
        preds = _load_predictions(rec)
        agnostic = {i: [{**p, "category_id": 1} for p in preds.get(i, [])] for i in ids}
        # the F1-best threshold over the whole test set, not only the photos shown
        kept, matches, thr = detections_at_best_f1(gt, agnostic)
        for c, image_id in enumerate(chosen):
            ax = axes[r][c]
            with Image.open(src.image_path(image_id)) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
            tp, used = matches[image_id]
            draw_outcomes(ax, gt[image_id], used, kept[image_id], tp, box_lw=1.4, miss_lw=1.8)
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
    return png(fig, dpi=72), caption


def per_class_figure(per_class: dict, colors: dict[str, str]) -> bytes | None:
    import matplotlib.pyplot as plt

    variants = per_class.get("variants") or {}
    classes = per_class.get("classes") or []
    if not variants or not classes:
        return None
    keys = list(variants)
    colors = {**variant_colors(keys), **colors}
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(classes) * len(keys) / 2 + 2), 3.4))
    width = 0.8 / len(keys)
    x = np.arange(len(classes))
    for j, k in enumerate(keys):
        vals = [(variants[k]["per_class"].get(c) or {}).get("AP50") or 0.0 for c in classes]
        ax.bar(
            x + (j - (len(keys) - 1) / 2) * width,
            vals,
            width,
            color=colors[k],
            label=_label(variants[k]),
        )
    ax.set_xticks(x, classes, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("AP50 per class")
    ax.legend(fontsize=7, ncol=min(5, len(keys)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return png(fig, dpi=100)


# ---- the headline ---------------------------------------------------------------------------------------
def _best_synthetic_sentence(summary: dict) -> str | None:
    """How well the best synthetic-only variant finds the objects, and how that compares to real-only."""
    v = summary.get("variants") or {}
    tr = summary.get("transfer") or {}
    best = max(
        (k for k in v if v[k].get("role") == "synthetic"),
        default=None,
        key=lambda k: v[k]["bbox"].get("AP50") or -1,
    )
    if best is None:
        return None
    ref = reference_key(v)
    ratio = ""
    if ref is not None and tr.get("ratios_meaningful", False):
        rel = tr.get("AP50_relative_to_real_only") or {}
        ratio = (
            f", {pct(rel.get(best))} of what the detector trained on the real photos reaches "
            f"(AP50 {fmt(v[ref]['bbox'].get('AP50'))})"
        )
    elif ref is not None:
        floor = tr.get("floor") or {}
        ratio = (
            f"; the real-only reference reaches AP50 {fmt(v[ref]['bbox'].get('AP50'))}, "
            f"{tr.get('reference_verdict', 'no blind floor measured')} (blind floor AP50 "
            f"{fmt(floor.get('estimate'))}), so no ratio to it is meaningful"
        )
    test = (summary.get("datasets") or {}).get("real_test") or {}
    return (
        f"Trained only on rendered images, the best synthetic variant ({_label(v[best])}) finds the "
        f"{summary.get('class_name', 'object')}s in {test.get('images', '?')} real test photos with AP50 "
        f"{fmt(v[best]['bbox'].get('AP50'))}{ratio}."
    )


def headline_sentence(summary: dict) -> str:
    """The sentence the issue asks for, with this run's numbers (or what is missing for it)."""
    tr = summary.get("transfer") or {}
    parts = [_best_synthetic_sentence(summary)]
    if tr.get("adaptation_gain_AP50") is not None:
        baseline = _adaptation_baseline(summary.get("variants") or {})
        parts.append(
            f"Domain adaptation ({_adaptation_methods(summary.get('variants') or {})}) changes AP50 by "
            f"{tr['adaptation_gain_AP50']:+.3f}" + (f" over ({baseline})." if baseline else ".")
        )
    if tr.get("randomization_gain_AP50") is not None:
        parts.append(
            f"Domain randomization changes AP50 by {tr['randomization_gain_AP50']:+.3f} over plain rendering."
        )
    if tr.get("finetune_gain_AP50") is not None:
        parts.append(
            f"Pretraining on synthetic data, then fine-tuning on the real photos, changes AP50 by "
            f"{tr['finetune_gain_AP50']:+.3f} over real-only."
        )
    return " ".join(p for p in parts if p) or "No variant was evaluated."


# ---- sections -------------------------------------------------------------------------------------------
def _intro(doc: Document, summary: dict, summary_path: Path) -> None:
    protocol = summary.get("protocol") or {}
    budget = protocol.get("same_budget") or {}
    doc.h(1, f"Sim-to-real benchmark: {summary.get('task', '?')} ({summary.get('scale', '?')} scale)")
    doc.p(
        f"Class-agnostic '{summary.get('class_name')}' detection, {budget.get('model')} at {budget.get('image_size')} px, "
        f"{budget.get('steps')} steps x {budget.get('batch_size')} images per variant, "
        f"{_seeds_phrase(protocol)}. "
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


def _seeds_phrase(protocol: dict) -> str:
    seeds = protocol.get("training_seeds") or [protocol.get("seed")]
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"split and render seed {protocol.get('seed')}, training seeds {', '.join(map(str, seeds))}"


def _relative_cell(summary: dict, key: str, ref: str | None) -> str:
    """A variant's AP50 as a share of the reference's, with its bootstrap interval."""
    if key == ref:
        return "reference"
    if ref is None:
        return "no real-only variant in this run"
    if not (summary.get("transfer") or {}).get("ratios_meaningful", False):
        return "reference not above the floor"
    rel = (summary.get("transfer") or {}).get("AP50_relative_to_real_only") or {}
    ratio_ci = (((summary.get("uncertainty") or {}).get("ratio_to_reference") or {}).get(key) or {}).get(
        "ci95"
    )
    return pct(rel.get(key)) + (f" ({pct(ratio_ci[0])}-{pct(ratio_ci[1])})" if ratio_ci else "")


def _several_seeds(variants: dict[str, dict]) -> bool:
    return any(len(r.get("seed_runs") or []) > 1 for r in variants.values())


def _seed_cell(rec: dict) -> str:
    """Each training run's AP50, in seed order."""
    return " / ".join(fmt((x.get("bbox") or {}).get("AP50")) for x in rec.get("seed_runs") or [])


def _accuracy_rows(summary: dict) -> list[list]:
    variants = summary["variants"]
    ref = reference_key(variants)
    seeds = _several_seeds(variants)
    return [
        [
            r["title"],
            f"{r.get('train_images', '?')} {'rendered' if r.get('role') == 'synthetic' else 'real'}",
            fmt(r["bbox"].get("AP")),
            fmt(r["bbox"].get("AP50")),
            *([_seed_cell(r)] if seeds else []),
            _interval(r["bbox"].get("AP50_ci95")),
            fmt(r["bbox"].get("AP75")),
            fmt(r["bbox"].get("AR100")),
            (r.get("floor_margin") or {}).get("verdict", "n/a"),
            _relative_cell(summary, k, ref),
            _training_time_cell(r),
        ]
        for k, r in variants.items()
    ] + _floor_row(summary)


def _training_time_cell(rec: dict) -> str:
    """Training seconds; a variant that starts from another's detector trains on top of that one's time."""
    cell = fmt(rec.get("train_s"), 0)
    return f"{cell} after ({rec['init_from']})" if rec.get("init_from") and rec.get("train_s") else cell


def _floor_row(summary: dict) -> list[list]:
    """The blind detector as a row of its own, so every AP50 in the table stands beside it."""
    floor = (summary.get("uncertainty") or {}).get("floor")
    if not floor:
        return []
    return [
        [
            "blind floor (never looks at the pixels)",
            "boxes of the real train split",
            "",
            fmt(floor["estimate"]),
            *([""] if _several_seeds(summary["variants"]) else []),
            _interval(floor["ci95"]),
            "",
            "",
            "",
            "",
            "",
        ]
    ]


def _accuracy_section(doc: Document, summary: dict, colors: dict[str, str], examples: int) -> None:
    """The headline table, the differences with their intervals, scores, PR curves and example photos."""
    variants = summary["variants"]
    test = (summary.get("datasets") or {}).get("real_test") or {}
    doc.h(2, "Accuracy on the real test photos")
    doc.p(
        f"Test set: {test.get('images', '?')} real photos with {test.get('objects', '?')} labelled objects "
        f"({test.get('path', '?')}); the same split for every variant. AP = COCO box mAP over IoU 0.50:0.95; "
        "AP50 / AP75 at one IoU; AR100 = recall with 100 detections per image.",
        "note",
    )
    seeds = _several_seeds(variants)
    header = [
        "variant",
        "training images",
        "AP",
        "AP50" + (" (mean over seeds)" if seeds else ""),
        *(["AP50 per training seed"] if seeds else []),
        "AP50 95% interval",
        "AP75",
        "AR100",
        "vs blind floor",
    ]
    doc.table([*header, "AP50 / real-only (95% interval)", "training s"], _accuracy_rows(summary))
    if (summary.get("uncertainty") or {}).get("floor"):
        doc.p(
            "The blind floor predicts the commonest box shapes of the real train split's boxes (k-means over "
            "normalised x, y, w, h, scored by share, plus the whole image) on every test photo without looking "
            "at it. 'above the floor' = the paired 95 % interval of a variant's AP50 minus the floor's lies "
            "above 0; a ratio to real-only is shown only when the real-only reference is above the floor.",
            "note",
        )
    unc = summary.get("uncertainty") or {}
    if unc.get("differences"):
        doc.p(
            "Differences in AP50, with 95 % intervals: "
            + "; ".join(
                f"{name} {d['estimate']:+.3f} ({_interval(d['ci95'], signed=True)})"
                for name, d in unc["differences"].items()
            )
            + f". Intervals: {unc.get('method')}; "
            + (
                "they cover the choice of test photos and the spread between the training seeds run here"
                if seeds
                else "they cover the choice of test photos, not the spread between training runs with other "
                "seeds (--train-seeds), so a difference whose interval includes 0 is not established"
            )
            + ".",
            "note",
        )
    ref = reference_key(variants)
    doc.figure(
        "scores",
        scores_figure(variants, colors),
        "Box AP50 (solid) and AP over IoU 0.50:0.95 (hatched) per variant"
        + (f"; dotted line: the real-only reference ({ref})." if ref else "."),
    )
    doc.figure(
        "pr_curves",
        pr_figure(variants, colors),
        "Precision-recall on the real test split, every variant overlaid "
        "(COCOeval, all object sizes, up to 100 detections per image).",
    )
    image, caption = (
        examples_figure(variants, test["path"], examples) if test.get("path") else (None, "no test set")
    )
    doc.figure("examples", image, caption)


def _per_class_section(doc: Document, pc: dict, colors: dict[str, str]) -> None:
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
        first = next(iter(pv.values()))
        doc.table(
            ["class", "test objects", *[_label(r) for r in pv.values()]],
            [
                [c, first["per_class"].get(c, {}).get("gt", 0)]
                + [fmt((r["per_class"].get(c) or {}).get("AP50")) for r in pv.values()]
                for c in classes
            ]
            + [["mean AP50", "", *[fmt(r["bbox"].get("AP50")) for r in pv.values()]]],
        )
        doc.figure("per_class", per_class_figure(pc, colors), "AP50 per class and variant.")
    elif pc.get("skipped"):
        doc.p(f"Per-class models: not trained ({pc['skipped']}).", "note")
    elif pc.get("enabled") is False:
        doc.p(
            "Per-class models: not trained at this scale (class-agnostic only; pass --per-class to add them).",
            "note",
        )


def _same_scenes_note(titles: dict[str, str], variants: dict[str, dict]) -> str:
    """Synthetic sets render the same scenes with different looks: say which variants' curves coincide."""
    firsts = []
    for name in ("synthetic_plain", "synthetic_dr"):
        keys = [
            k
            for k, r in variants.items()
            if r.get("role") == "synthetic" and r.get("train_data_kind") == name
        ]
        if keys:
            firsts.append(f"({keys[0]})")
    if len(firsts) < 2:
        return ""
    return (
        f" {' and '.join(firsts)} render the same scenes with different looks, so their box curves coincide."
    )


def _statistics_section(doc: Document, summary: dict, titles: dict[str, str]) -> dict:
    """Box sizes and image appearance of every data set; returns the numbers for data_statistics.json."""
    datasets = summary.get("datasets") or {}
    image_size = ((summary.get("protocol") or {}).get("same_budget") or {}).get("image_size")
    doc.h(2, "Synthetic versus real data")
    order = [n for n in SET_TITLES if n in datasets]
    box_stats = {n: box_statistics(datasets[n]["path"], image_size) for n in order}
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
            "letterboxed",
            "path",
        ],
        [
            [
                titles.get(n, n),
                box_stats[n]["images"],
                box_stats[n]["boxes"],
                box_stats[n]["boxes_per_image"],
                " / ".join(fmt(v, 2) for v in (box_stats[n]["relative_size"] or {}).values()) or "n/a",
                fmt((box_stats[n]["pixels_at_input"] or {}).get(50), 0),
                fmt(look_stats[n]["mean_brightness"], 2),
                fmt(look_stats[n]["mean_contrast"], 2),
                fmt(look_stats[n]["mean_saturation"], 2),
                pct(look_stats[n]["letterboxed_share"]),
                datasets[n]["path"],
            ]
            for n in order
        ],
    )
    doc.figure(
        "box_sizes",
        box_size_figure(box_stats, image_size, titles),
        "Box-size distributions: object scale relative to the image, the longer box side in pixels as the "
        "detector sees it (after letterboxing to its input size), and box aspect ratio."
        + _same_scenes_note(titles, summary["variants"]),
    )
    doc.figure(
        "appearance",
        appearance_figure(look_stats, titles),
        f"Brightness, saturation and hue over the pixels of up to {STAT_IMAGES} images per set (downscaled to "
        f"{STAT_SIDE} px). Curves that overlap mean the renderer matches the photos in that respect.",
    )
    return {n: {"boxes": _public(box_stats[n]), "appearance": _public(look_stats[n])} for n in order}


def _protocol_section(doc: Document, summary: dict) -> None:
    protocol = summary.get("protocol") or {}
    budget = protocol.get("same_budget") or {}
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
    header = ["variant", "training data", "images", "objects", "augment", "adaptation photos", "starts from"]
    doc.table(
        [*header, "steps", "batch", "seed", "training"],
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
            for r in summary["variants"].values()
        ],
    )


def _provenance_rows(summary: dict, titles: dict[str, str]) -> list[list]:
    protocol = summary.get("protocol") or {}
    datasets = summary.get("datasets") or {}
    prov = summary.get("provenance") or {}
    git = prov.get("git") or {}
    device = prov.get("device") or {}
    catalog = summary.get("catalog") or {}
    timings = summary.get("timings") or {}
    return [
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
                f"{titles[n]}: {datasets[n]['images']} images from "
                f"{Path(datasets[n].get('config', '?')).name} ({datasets[n].get('look')} looks)"
                for n in ("synthetic_plain", "synthetic_dr")
                if n in datasets
            ),
        ],
        ["packages", ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())],
        [
            "wall time",
            ", ".join(
                f"{k.removesuffix('_s')} {v:.0f} s" for k, v in timings.items() if isinstance(v, int | float)
            ),
        ],
        ["command", prov.get("command", "?")],
    ]


# ---- the report -----------------------------------------------------------------------------------------
def write_comparison(summary_path: str | Path, *, examples: int = 5) -> Path:
    """Write report.html / report.md / report_files/ next to ``summary_path``; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    summary_path = Path(summary_path)
    summary = read_json(summary_path)
    if not isinstance(summary, dict) or "variants" not in summary:
        raise ConfigError(summary_path, "not a benchmark summary (expected sim2real.json with 'variants')")
    out = summary_path.parent
    variants = summary["variants"]
    colors = variant_colors(variants)
    titles = set_titles(variants)
    doc = Document()
    _intro(doc, summary, summary_path)
    _accuracy_section(doc, summary, colors, examples)
    _per_class_section(doc, summary.get("per_class") or {}, colors)
    stats = _statistics_section(doc, summary, titles)
    _protocol_section(doc, summary)
    doc.h(2, "Provenance")
    doc.table(["", ""], _provenance_rows(summary, titles))
    html_path = doc.write(out, f"simreal sim2real {summary.get('task', '?')}")
    atomic_write_json(out / "data_statistics.json", stats)
    return html_path
