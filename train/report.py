"""``write_report(run_dir)``: one self-contained HTML page (figures inlined as base64 PNG) and a Markdown
twin (figures in ``report_files/``) that say what was trained, on what, and how well it does.

Everything comes from files the run directory already holds (see train.engine): config.yaml,
provenance.json, dataset_summary.json, log.csv and eval/<set>/{metrics.json, predictions.json}; the
example pictures re-read the evaluated images from the path stored in metrics.json (and are skipped
with a note when those images are no longer there). So a report can be rebuilt at any time, e.g. after
``simreal evaluate`` added another set.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from synth.fsutil import atomic_write_bytes, atomic_write_text

MODEL_TITLES = {
    "maskrcnn_resnet50_fpn_v2": "Mask R-CNN, ResNet-50 FPN v2",
    "maskrcnn_mobilenet_v3_large_fpn": "Mask R-CNN, MobileNetV3-Large FPN",
    "ssd300_vgg16": "SSD300, VGG16",
    "ssdlite320_mobilenet_v3_large": "SSDlite, MobileNetV3-Large",
}
METRIC_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
MAX_PR_CLASSES = 12
COLORS = {"tp": "#1a9850", "fp": "#d73027", "miss": "#fdae61"}


# ---- reading the run -------------------------------------------------------------------------------
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_log(path: Path) -> dict[str, np.ndarray]:
    """log.csv as columns of floats (NaN where empty); only columns with at least one value."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, np.ndarray] = {}
    for key in rows[0].keys() if rows else []:
        vals = np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
        if np.isfinite(vals).any():
            cols[key] = vals
    return cols


def _eval_sets(run: Path) -> list[tuple[str, dict, Path]]:
    out = []
    for mfile in sorted((run / "eval").glob("*/metrics.json")):
        metrics = _read_json(mfile)
        if metrics:
            out.append((mfile.parent.name, metrics, mfile.parent))
    # The validation split first, then real sets alphabetically.
    return sorted(out, key=lambda t: (t[0] != "val", t[0]))


# ---- figures ---------------------------------------------------------------------------------------
def _png(fig, dpi: int = 110, photo: bool = False) -> bytes:
    """PNG bytes of a figure; `photo` figures are quantised to 256 colours (a third of the size, inlined)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    if not photo:
        return buf.getvalue()
    from PIL import Image

    small = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=256).save(small, format="PNG", optimize=True)
    return small.getvalue()


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(y) < k:
        return y
    kernel = np.ones(k) / k
    pad = np.concatenate([np.full(k // 2, y[0]), y, np.full(k - 1 - k // 2, y[-1])])
    return np.convolve(pad, kernel, mode="valid")


def training_curves_figure(log: dict[str, np.ndarray]) -> bytes | None:
    import matplotlib.pyplot as plt

    if "step" not in log or "loss" not in log:
        return None
    ok = np.isfinite(log["loss"])
    step = log["step"][ok]
    panels = ["loss", "lr"]
    if "domain_acc" in log:
        panels.append("domain")
    if "val_bbox_AP" in log:
        panels.append("val")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    axes = np.atleast_1d(axes)
    k = max(1, len(step) // 25)
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "loss":
            for key in sorted(
                c for c in log if c.startswith("loss") or c in ("classification", "bbox_regression")
            ):
                y = log[key][ok]
                if np.isfinite(y).all():
                    ax.plot(
                        step, _smooth(y, k), label=key.replace("loss_", ""), lw=2.2 if key == "loss" else 1.2
                    )
            ax.set_yscale("log")
            ax.set_title("training loss (smoothed)")
            ax.legend(fontsize=7)
        elif panel == "lr":
            ax.plot(step, log["lr"][ok], color="k")
            ax.set_title("learning rate")
        elif panel == "domain":
            ax.plot(step, log["domain_acc"][ok], label="domain classifier accuracy", color="#4575b4")
            if "domain_acc_instance" in log:
                ax.plot(
                    step, log["domain_acc_instance"][ok], label="instance-level accuracy", color="#91bfdb"
                )
            if "lambda" in log:
                ax.plot(step, log["lambda"][ok], label="GRL lambda", color="#999999", ls="--")
            ax.axhline(0.5, color="#d73027", lw=0.8, ls=":", label="chance (aligned)")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title("domain adaptation (DANN)")
            ax.legend(fontsize=7)
        else:
            vok = np.isfinite(log["val_bbox_AP"])
            ax.plot(log["step"][vok], log["val_bbox_AP"][vok], "o-", label="bbox AP")
            if "val_segm_AP" in log:
                sok = np.isfinite(log["val_segm_AP"])
                ax.plot(log["step"][sok], log["val_segm_AP"][sok], "s-", label="segm AP")
            ax.set_title("validation AP")
            ax.legend(fontsize=7)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def pr_curves_figure(block: dict, title: str) -> bytes | None:
    """Small multiples: precision vs recall per class at IoU 0.50 and 0.75 (COCOeval, 100 detections)."""
    import matplotlib.pyplot as plt

    curves = block.get("pr_curves") or {}
    if not curves:
        return None
    recall = np.array(block.get("recall_points") or np.linspace(0, 1, 101))
    order = sorted(curves, key=lambda c: -(block["per_class"][c]["gt"] or 0))[:MAX_PR_CLASSES]
    n = len(order) + (1 if len(curves) > 1 else 0)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False)
    items = [(name, curves[name]) for name in order]
    if len(curves) > 1:
        items.insert(
            0,
            (
                "all classes (mean)",
                {
                    "iou50": np.mean([c["iou50"] for c in curves.values()], axis=0),
                    "iou75": np.mean([c["iou75"] for c in curves.values()], axis=0),
                },
            ),
        )
    for ax, (name, c) in zip(axes.flat, items, strict=False):
        ax.plot(recall, c["iou50"], color="#1a9850", label="IoU 0.50")
        ax.plot(recall, c["iou75"], color="#4575b4", label="IoU 0.75")
        ap = block["per_class"].get(name, {}).get("AP") if name in block["per_class"] else block.get("AP")
        ax.set_title(f"{name[:28]}  (AP {_fmt(ap)})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    fig.suptitle(
        title
        + (
            f" - {len(order)} of {len(curves)} classes with the most objects"
            if len(curves) > len(order)
            else ""
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return _png(fig)


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes [N, 4] x [M, 4]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(ax1[:, None], bx1), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(ay1[:, None], by1), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3]) - inter
    return inter / np.maximum(union, 1e-9)


def match_predictions(
    gt_by_image: dict[int, list[dict]], preds_by_image: dict[int, list[dict]], iou: float = 0.5
) -> tuple[dict, float]:
    """Greedy per-image, per-class matching by descending score at bbox IoU >= `iou`.

    Returns ({image_id: (matched pred indices, matched gt indices)}, score threshold maximising F1).
    Greedy-by-score makes a detection's match independent of lower-scored ones, so one matching
    serves every threshold.
    """
    matches, scored, n_gt = {}, [], 0
    for image_id, gts in gt_by_image.items():
        preds = preds_by_image.get(image_id, [])
        n_gt += len(gts)
        used_gt, tp = set(), set()
        order = sorted(range(len(preds)), key=lambda i: -preds[i]["score"])
        if preds and gts:
            ious = _box_iou(
                np.array([p["bbox"] for p in preds], float), np.array([g["bbox"] for g in gts], float)
            )
            for i in order:
                cands = [
                    (ious[i, j], j)
                    for j in range(len(gts))
                    if j not in used_gt
                    and gts[j]["category_id"] == preds[i]["category_id"]
                    and ious[i, j] >= iou
                ]
                if cands:
                    j = max(cands)[1]
                    used_gt.add(j)
                    tp.add(i)
        matches[image_id] = (tp, used_gt)
        scored += [(preds[i]["score"], i in tp) for i in range(len(preds))]
    best_t, best_f1 = 0.5, -1.0
    scored.sort(key=lambda s: -s[0])
    tp_count = 0
    for k, (score, is_tp) in enumerate(scored):
        tp_count += is_tp
        if k + 1 < len(scored) and scored[k + 1][0] == score:
            continue
        f1 = 2 * tp_count / (k + 1 + n_gt) if (k + 1 + n_gt) else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, score
    return matches, best_t


def examples_figure(metrics: dict, eval_dir: Path, max_examples: int) -> tuple[bytes | None, str]:
    """Predictions over the evaluated photos: TP green, FP red dashed, misses orange; with a caption."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image
    from pycocotools import mask as mask_utils

    from train.data import DataError, load_coco
    from train.evaluate import label_map_for_metrics, remapped_ground_truth

    preds = _read_json(eval_dir / "predictions.json")
    if preds is None:
        return None, "no predictions.json"
    try:
        source = load_coco(metrics["data"], check_files=False)
    except (DataError, KeyError) as e:
        return None, f"ground truth not readable ({e})"
    label_map = label_map_for_metrics(metrics, source)
    ids = metrics.get("image_ids") or sorted(source.images)
    gt, _ = remapped_ground_truth(source, label_map, ids)
    known = {c["id"] for c in gt["categories"]}
    names = {c["id"]: c["name"] for c in gt["categories"]}
    gt_by_image = {i: [] for i in ids}
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            gt_by_image[a["image_id"]].append(a)
    preds_by_image: dict[int, list[dict]] = {}
    for p in preds:
        if p["category_id"] in known:
            preds_by_image.setdefault(p["image_id"], []).append(p)
    matches, threshold = match_predictions(gt_by_image, preds_by_image)
    kept = {i: [p for p in preds_by_image.get(i, []) if p["score"] >= threshold] for i in ids}
    matches, _ = match_predictions(gt_by_image, kept)
    with_objects = [i for i in ids if gt_by_image[i] and source.image_path(i).is_file()]
    picks = np.unique(
        np.linspace(0, len(with_objects) - 1, min(max_examples, len(with_objects))).round().astype(int)
    )
    chosen = [with_objects[k] for k in picks] if with_objects else []
    if not chosen:
        return None, "the evaluated images are not available on this machine"
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False)
    totals = {"tp": 0, "fp": 0, "miss": 0}
    for ax, image_id in zip(axes.flat, chosen, strict=False):
        img = np.asarray(Image.open(source.image_path(image_id)).convert("RGB")).astype(float) / 255
        tp, used_gt = matches[image_id]
        overlay = img.copy()
        for k, p in enumerate(kept[image_id]):
            if k in tp and "segmentation" in p:
                m = mask_utils.decode(
                    {"size": p["segmentation"]["size"], "counts": p["segmentation"]["counts"].encode("ascii")}
                ).astype(bool)
                overlay[m] = 0.55 * overlay[m] + 0.45 * np.array([0.1, 0.6, 0.3])
        ax.imshow(overlay)
        for j, g in enumerate(gt_by_image[image_id]):
            if j not in used_gt:
                x, y, w, h = g["bbox"]
                ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=COLORS["miss"], lw=2.2, ls=":"))
                totals["miss"] += 1
        for k, p in enumerate(kept[image_id]):
            x, y, w, h = p["bbox"]
            kind = "tp" if k in tp else "fp"
            totals[kind] += 1
            ax.add_patch(
                Rectangle((x, y), w, h, fill=False, ec=COLORS[kind], lw=1.6, ls="-" if kind == "tp" else "--")
            )
            ax.text(
                x,
                y - 2,
                f"{names.get(p['category_id'], '?')[:18]} {p['score']:.2f}",
                fontsize=6,
                color="white",
                bbox={"facecolor": COLORS[kind], "alpha": 0.8, "pad": 1, "lw": 0},
            )
        ax.set_title(Path(source.images[image_id]["file_name"]).name[:40], fontsize=7)
        ax.axis("off")
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    fig.legend(
        handles=[
            Line2D([], [], color=COLORS["tp"], lw=2, label="correct detection"),
            Line2D([], [], color=COLORS["fp"], lw=2, ls="--", label="false positive"),
            Line2D([], [], color=COLORS["miss"], lw=2.5, ls=":", label="missed object"),
        ],
        loc="lower center",
        ncol=3,
        fontsize=9,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    caption = (
        f"{len(chosen)} of {len(with_objects)} labelled images, detections with score >= {threshold:.2f} "
        f"(the threshold that maximises F1 on this set, IoU 0.5). Green solid = correct detection "
        f"({totals['tp']}), red dashed = false positive ({totals['fp']}), orange dotted = missed object "
        f"({totals['miss']}); green tint = predicted mask of a correct detection."
    )
    return _png(fig, dpi=80, photo=True), caption


# ---- text ------------------------------------------------------------------------------------------
def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


class _Doc:
    """Builds the HTML and the Markdown side by side so they cannot drift apart."""

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
        self.md.append(f"{text}\n")

    def table(self, header: list[str], rows: list[list[str]], cls: str = "") -> None:
        self.html.append(
            f"<table class='{cls}'><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            + "</table>"
        )
        self.md.append(
            "| "
            + " | ".join(header)
            + " |\n|"
            + "---|" * len(header)
            + "\n"
            + "".join("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |\n" for r in rows)
        )

    def figure(self, name: str, png: bytes | None, caption: str = "") -> None:
        if png is None:
            if caption:
                self.p(f"(no figure: {caption})", "note")
            return
        self.images[name] = png
        b64 = base64.b64encode(png).decode("ascii")
        self.html.append(
            f"<figure><img src='data:image/png;base64,{b64}' alt='{html.escape(name)}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.md.append(f"![{name}]({self.files_dir.name}/{name}.png)\n\n{caption}\n")

    def pre(self, text: str) -> None:
        self.html.append(f"<pre>{html.escape(text)}</pre>")
        self.md.append("```\n" + text.rstrip() + "\n```\n")


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.92em}th,td{border:1px solid #ccc;padding:4px 9px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}table.kv td{text-align:left}
.summary{background:#f5f9ff;border-left:4px solid #4575b4;padding:10px 14px;font-size:1.05em}
.warn{background:#fff6e5;border-left:4px solid #f0a030;padding:8px 14px}.note{color:#666;font-size:0.9em}
figure{margin:10px 0 22px}img{max-width:100%}figcaption{color:#555;font-size:0.88em}
pre{background:#f7f7f7;padding:10px;overflow-x:auto;font-size:0.82em}
"""


# ---- the report ------------------------------------------------------------------------------------
def write_report(run_dir: str | Path, *, max_examples: int = 6) -> Path:
    """Write RUN_DIR/report.html (self-contained) and RUN_DIR/report.md (+ report_files/); returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(run, "run directory not found")
    prov = _read_json(run / "provenance.json") or {}
    summary = _read_json(run / "dataset_summary.json") or {}
    config_text = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else ""
    log = _read_log(run / "log.csv")
    sets = _eval_sets(run)
    if not config_text and not sets:
        raise ConfigError(
            run, "neither a training run (config.yaml) nor evaluations (eval/*/metrics.json) found"
        )
    import yaml

    cfg = yaml.safe_load(config_text) if config_text else {}
    files_dir = run / "report_files"
    doc = _Doc(files_dir)
    model_name = (cfg.get("model") or {}).get("name") or (sets[0][1].get("model") if sets else "?")
    weights = prov.get("weights_source") or (sets[0][1].get("weights_source") if sets else "unknown")
    steps = int(log["step"][np.isfinite(log.get("loss", log["step"]))][-1]) if "step" in log else None

    # Headline.
    doc.h(1, f"Detector report: {run.name}")
    doc.p(
        f"{MODEL_TITLES.get(model_name, model_name)} · generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "note",
    )
    train_info = summary.get("train") or {}
    parts = [
        f"{MODEL_TITLES.get(model_name, model_name)} trained for {steps} steps"
        if steps
        else f"{MODEL_TITLES.get(model_name, model_name)}"
    ]
    if train_info:
        parts.append(
            f"on {train_info.get('images')} labelled images ({train_info.get('instances')} objects, "
            f"{len(train_info.get('instances_per_class', {}))} classes)"
        )
    if (summary.get("target") or {}).get("images"):
        parts.append(f"adapted with DANN to {summary['target']['images']} unlabelled target photos")
    headline = " ".join(parts) + "."
    results = []
    for name, m, _ in sets:
        seg = m.get("segm") or {}
        label = "held-out validation images" if name == "val" else name
        results.append(
            f"{label}: box AP {_fmt(m['bbox']['AP'])} (AP50 {_fmt(m['bbox']['AP50'])})"
            + (f", mask AP {_fmt(seg.get('AP'))}" if seg else "")
        )
    doc.p(
        headline + (" Results — " + "; ".join(results) + "." if results else " No evaluation yet."), "summary"
    )
    if str(weights).startswith("random init"):
        doc.p(
            "Trained from random initialisation (no pretrained weights were available): expect far lower accuracy "
            "than a pretrained start; put torchvision's weight files in the torch hub cache or pass --weights.",
            "warn",
        )

    # Metrics.
    doc.h(2, "Accuracy (COCO metrics)")
    doc.p(
        "AP is COCO mAP averaged over IoU 0.50:0.95 (1.0 = perfect); AP50 / AP75 at one IoU; APs/m/l for small "
        "(< 32² px), medium and large objects; AR100 the recall with 100 detections per image. "
        "'n/a' = no object of that kind in the set.",
        "note",
    )
    rows = []
    for name, m, _ in sets:
        for kind in ("bbox", "segm"):
            block = m.get(kind)
            if block:
                rows.append(
                    [name, "box" if kind == "bbox" else "mask", m.get("images"), m.get("gt_instances")]
                    + [_fmt(block.get(c)) for c in METRIC_COLUMNS]
                )
    if rows:
        doc.table(["set", "type", "images", "objects", *METRIC_COLUMNS], rows)
    for name, m, _ in sets:
        notes = []
        if m.get("segm") is None and m.get("segm_skipped"):
            notes.append(f"mask AP not computed: {m['segm_skipped']}")
        if m.get("class_agnostic"):
            notes.append(
                f"class-agnostic: every category counted as '{m['class_names'][0] if len(m['class_names']) == 1 else m['mapping']['class_names'][0]}'"
            )
        elif m.get("mapping", {}).get("unmapped"):
            um = m["mapping"]["unmapped"]
            notes.append(
                f"{len(um)} categor{'y' if len(um) == 1 else 'ies'} the model does not know left out "
                f"({', '.join(um[:6])}{' ...' if len(um) > 6 else ''}; {m.get('gt_left_out', 0)} objects)"
            )
        if notes:
            doc.p(f"{name}: " + "; ".join(notes) + ".", "note")

    for name, m, eval_dir in sets:
        doc.h(2, f"Set '{name}'" + (" (held-out images of the training data)" if name == "val" else ""))
        doc.p(
            f"{m.get('images')} images from {m.get('data')}; checkpoint step {m.get('step')}; "
            f"{m.get('predictions')} detections; inference {_fmt(m.get('images_per_s'), 1)} images/s "
            f"on {m.get('device', '?')}.",
            "note",
        )
        seg = m.get("segm") or {}
        doc.table(
            ["class", "objects", "box AP", "box AP50", "mask AP", "mask AP50"],
            [
                [
                    c,
                    v["gt"],
                    _fmt(v["AP"]),
                    _fmt(v["AP50"]),
                    _fmt(seg.get("per_class", {}).get(c, {}).get("AP")) if seg else "-",
                    _fmt(seg.get("per_class", {}).get(c, {}).get("AP50")) if seg else "-",
                ]
                for c, v in m["bbox"]["per_class"].items()
            ],
        )
        doc.figure(
            f"pr_{name}_bbox",
            pr_curves_figure(m["bbox"], f"{name}: box precision-recall"),
            "Precision-recall per class (COCOeval, all object sizes, up to 100 detections per image).",
        )
        if seg:
            doc.figure(f"pr_{name}_segm", pr_curves_figure(seg, f"{name}: mask precision-recall"), "")
        png, caption = examples_figure(m, eval_dir, max_examples)
        doc.figure(f"examples_{name}", png, caption)

    # Training.
    if log:
        doc.h(2, "Training")
        fig = training_curves_figure(log)
        cap = "Loss terms (log scale), learning rate"
        if "domain_acc" in log:
            cap += (
                "; domain-classifier accuracy: 1.0 means synthetic and real features are trivially separable, "
                "0.5 (chance) means they are aligned"
            )
        doc.figure("training_curves", fig, cap + ".")
        if "images_per_s" in log:
            ips = log["images_per_s"][np.isfinite(log["images_per_s"])]
            wait = log.get("data_wait_frac", np.array([np.nan]))
            doc.p(
                f"Throughput {np.median(ips):.1f} images/s (median over log intervals); the loop waited for data "
                f"{100 * np.nanmedian(wait):.0f}% of the time.",
                "note",
            )

    # Data.
    doc.h(2, "Data")
    drows = []
    for role in ("train", "val"):
        s = summary.get(role)
        if s and "instances_per_class" in s:
            drows.append(
                [
                    role,
                    s["images"],
                    s["instances"],
                    s["instances_per_image"],
                    f"{s['width_range'][0]}-{s['width_range'][1]} x {s['height_range'][0]}-{s['height_range'][1]}",
                    "yes" if s["has_masks"] else "no",
                    s["path"],
                ]
            )
        elif s:
            drows.append([role, s.get("images"), "", "", "", "", s.get("path")])
    if (summary.get("target") or {}).get("images"):
        drows.append(
            ["target (unlabelled)", summary["target"]["images"], "", "", "", "", summary["target"]["path"]]
        )
    if drows:
        doc.table(["set", "images", "objects", "objects/image", "size (px)", "masks", "path"], drows)
    if train_info.get("instances_per_class"):
        doc.table(
            ["class", "training objects"], [[c, n] for c, n in train_info["instances_per_class"].items()]
        )
        mp = train_info.get("mapping", {})
        doc.p(
            f"Category mapping: {mp.get('mode')}"
            + (f"; dropped: {', '.join(mp['unmapped'])}" if mp.get("unmapped") else "")
            + (f". Training ran {summary.get('epochs')} epochs." if summary.get("epochs") else "."),
            "note",
        )

    # Provenance.
    doc.h(2, "Provenance")
    git = prov.get("git", {})
    device = prov.get("device", {})
    prow = [
        ["model", MODEL_TITLES.get(model_name, model_name)],
        ["weights", weights],
        [
            "git commit",
            f"{git.get('commit', 'unknown')}" + (" (uncommitted changes)" if git.get("dirty") else ""),
        ],
        [
            "device",
            f"{device.get('gpu') or device.get('cpu', '')} ({device.get('device', '?')})"
            + (f" x{prov['world_size']} processes" if prov.get("world_size", 1) > 1 else ""),
        ],
        ["precision", f"AMP {prov.get('amp', '?')}, channels_last {prov.get('channels_last', '?')}"],
        [
            "normalisation",
            {
                "group": "GroupNorm",
                "batch": "BatchNorm",
                "frozen_batch": "frozen BatchNorm",
                "none": "none",
            }.get(prov.get("norm"), prov.get("norm", "?")),
        ],
        ["seed", prov.get("seed", cfg.get("seed", "?"))],
        [
            "parameters",
            f"{prov.get('parameters', 0) / 1e6:.1f} M ({prov.get('trainable_parameters', 0) / 1e6:.1f} M trainable)"
            if prov.get("parameters")
            else "?",
        ],
        ["augmentation", ", ".join(prov.get("augment") or []) or "none"],
        ["packages", ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())],
        ["command", prov.get("command", "?")],
    ]
    doc.table(["item", "value"], prow, "kv")
    if config_text:
        doc.h(3, "config.yaml")
        doc.pre(config_text)

    # Write: HTML self-contained; Markdown with its figures beside it.
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(f"simreal report {run.name}")
        + f"</title><style>{CSS}</style></head><body>"
        + "\n".join(doc.html)
        + "</body></html>\n"
    )
    for name, png in doc.images.items():
        atomic_write_bytes(files_dir / f"{name}.png", png)
    atomic_write_text(run / "report.md", "\n".join(doc.md))
    atomic_write_text(run / "report.html", page)
    return run / "report.html"
