"""``write_report(run_dir)``: one self-contained HTML page (figures inlined as base64 PNG) and a Markdown
twin (figures in ``report_files/``) that say what was trained, on what, and how well it does.

Everything comes from files the run directory already holds (see train.engine): config.yaml,
provenance.json, dataset_summary.json, log.csv and eval/<set>/{metrics.json, predictions.json}; the
example pictures re-read the evaluated images from the path stored in metrics.json (and are skipped
with a note when those images are no longer there). So a report can be rebuilt at any time, e.g. after
``simreal evaluate`` added another set.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from train.config import TARGET_IMAGE_METHODS
from train.document import Document, fmt, png, read_json
from train.figures import OUTCOME_COLORS, draw_outcomes
from train.metrics import detections_at_best_f1

MODEL_TITLES = {
    "maskrcnn_resnet50_fpn_v2": "Mask R-CNN, ResNet-50 FPN v2",
    "maskrcnn_mobilenet_v3_large_fpn": "Mask R-CNN, MobileNetV3-Large FPN",
    "ssd300_vgg16": "SSD300, VGG16",
    "ssdlite320_mobilenet_v3_large": "SSDlite, MobileNetV3-Large",
}
METRIC_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
MAX_PR_CLASSES = 12
NORM_TITLES = {"group": "GroupNorm", "batch": "BatchNorm", "frozen_batch": "frozen BatchNorm", "none": "none"}


# ---- reading the run -------------------------------------------------------------------------------
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
        metrics = read_json(mfile)
        if metrics:
            out.append((mfile.parent.name, metrics, mfile.parent))
    # The validation split first, then real sets alphabetically.
    return sorted(out, key=lambda t: (t[0] != "val", t[0]))


@dataclass
class RunFiles:
    """What a run directory holds, read once; missing files read as empty."""

    path: Path
    provenance: dict
    summary: dict
    config_text: str
    log: dict[str, np.ndarray]
    sets: list[tuple[str, dict, Path]]
    config: dict = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return (self.config.get("model") or {}).get("name") or (
            self.sets[0][1].get("model") if self.sets else "?"
        )

    @property
    def model_title(self) -> str:
        return MODEL_TITLES.get(self.model_name, self.model_name)

    @property
    def data_name(self) -> str:
        """The training set as a title names it: its folder and the one above (runs/x/data -> x/data)."""
        path = Path((self.summary.get("train") or {}).get("path") or self.config.get("data") or "")
        folder = path.parent if path.suffix == ".json" else path
        return "/".join(p for p in folder.parts[-2:] if p != folder.anchor) or "unknown data"

    @property
    def title(self) -> str:
        return f"{self.model_title} trained on {self.data_name}"

    @property
    def weights(self) -> str:
        return self.provenance.get("weights_source") or (
            self.sets[0][1].get("weights_source") if self.sets else "unknown"
        )

    @property
    def steps(self) -> int | None:
        log = self.log
        return int(log["step"][np.isfinite(log.get("loss", log["step"]))][-1]) if "step" in log else None


def read_run(run_dir: str | Path) -> RunFiles:
    """The run directory's records; a ConfigError when it holds neither a training run nor evaluations."""
    import yaml

    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(run, "run directory not found")
    config_text = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else ""
    files = RunFiles(
        path=run,
        provenance=read_json(run / "provenance.json") or {},
        summary=read_json(run / "dataset_summary.json") or {},
        config_text=config_text,
        log=_read_log(run / "log.csv"),
        sets=_eval_sets(run),
        config=(yaml.safe_load(config_text) if config_text else {}),
    )
    if not config_text and not files.sets:
        raise ConfigError(
            run, "neither a training run (config.yaml) nor evaluations (eval/*/metrics.json) found"
        )
    return files


# ---- figures ---------------------------------------------------------------------------------------
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
    return png(fig)


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
        ax.set_title(f"{name[:28]}  (AP {fmt(ap)})", fontsize=8)
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
    return png(fig)


@dataclass
class _Examples:
    """The evaluated images to draw and each one's detections at the F1-best threshold."""

    source: object
    names: dict[int, str]
    gt_by_image: dict[int, list[dict]]
    kept: dict[int, list[dict]]
    matches: dict
    threshold: float
    with_objects: list[int]
    chosen: list[int]


def _pick_examples(metrics: dict, eval_dir: Path, max_examples: int) -> _Examples | str:
    """The examples to draw, or why there are none."""
    from synth.coco import CocoError, load_coco
    from train.evaluate import label_map_for_metrics, remapped_ground_truth

    preds = read_json(eval_dir / "predictions.json")
    if preds is None:
        return "no predictions.json"
    try:
        source = load_coco(metrics["data"], check_files=False)
    except (CocoError, KeyError) as e:
        return f"ground truth not readable ({e})"
    label_map = label_map_for_metrics(metrics, source)
    ids = metrics.get("image_ids") or sorted(source.images)
    gt, _ = remapped_ground_truth(source, label_map, ids)
    known = {c["id"] for c in gt["categories"]}
    gt_by_image = {i: [] for i in ids}
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            gt_by_image[a["image_id"]].append(a)
    preds_by_image: dict[int, list[dict]] = {}
    for p in preds:
        if p["category_id"] in known:
            preds_by_image.setdefault(p["image_id"], []).append(p)
    kept, matches, threshold = detections_at_best_f1(gt_by_image, preds_by_image)
    with_objects = [i for i in ids if gt_by_image[i] and source.image_path(i).is_file()]
    picks = np.unique(
        np.linspace(0, len(with_objects) - 1, min(max_examples, len(with_objects))).round().astype(int)
    )
    chosen = [with_objects[k] for k in picks] if with_objects else []
    if not chosen:
        return "the evaluated images are not available on this machine"
    names = {c["id"]: c["name"] for c in gt["categories"]}
    return _Examples(source, names, gt_by_image, kept, matches, threshold, with_objects, chosen)


def _draw_example(ax, ex: _Examples, image_id: int) -> dict[str, int]:
    """One photo: predicted masks of correct detections tinted green, then the boxes."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    img = np.asarray(Image.open(ex.source.image_path(image_id)).convert("RGB")).astype(float) / 255
    tp, used_gt = ex.matches[image_id]
    overlay = img.copy()
    for k, p in enumerate(ex.kept[image_id]):
        if k in tp and "segmentation" in p:
            m = mask_utils.decode(
                {"size": p["segmentation"]["size"], "counts": p["segmentation"]["counts"].encode("ascii")}
            ).astype(bool)
            overlay[m] = 0.55 * overlay[m] + 0.45 * np.array([0.1, 0.6, 0.3])
    ax.imshow(overlay)
    counts = draw_outcomes(
        ax,
        ex.gt_by_image[image_id],
        used_gt,
        ex.kept[image_id],
        tp,
        box_lw=1.6,
        miss_lw=2.2,
        label=lambda p: (
            (f"{ex.names.get(p['category_id'], '?')[:18]} " if len(ex.names) > 1 else "")
            + f"{p['score']:.2f}"
        ),
    )
    ax.set_title(Path(ex.source.images[image_id]["file_name"]).name[:40], fontsize=7)
    ax.axis("off")
    return counts


def examples_figure(metrics: dict, eval_dir: Path, max_examples: int) -> tuple[bytes | None, str]:
    """Predictions over the evaluated photos: TP green, FP red dashed, misses orange; with a caption."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ex = _pick_examples(metrics, eval_dir, max_examples)
    if isinstance(ex, str):
        return None, ex
    cols = min(3, len(ex.chosen))
    rows = math.ceil(len(ex.chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False)
    totals = {"tp": 0, "fp": 0, "miss": 0}
    for ax, image_id in zip(axes.flat, ex.chosen, strict=False):
        for kind, n in _draw_example(ax, ex, image_id).items():
            totals[kind] += n
    for ax in list(axes.flat)[len(ex.chosen) :]:
        ax.axis("off")
    fig.legend(
        handles=[
            Line2D([], [], color=OUTCOME_COLORS["tp"], lw=2, label="correct detection"),
            Line2D([], [], color=OUTCOME_COLORS["fp"], lw=2, ls="--", label="false positive"),
            Line2D([], [], color=OUTCOME_COLORS["miss"], lw=2.5, ls=":", label="missed object"),
        ],
        loc="lower center",
        ncol=3,
        fontsize=9,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    caption = (
        f"{len(ex.chosen)} of {len(ex.with_objects)} labelled images, detections with score >= "
        f"{ex.threshold:.2f} (the threshold that maximises F1 on this set, IoU 0.5). Green solid = correct "
        f"detection ({totals['tp']}), red dashed = false positive ({totals['fp']}), orange dotted = missed "
        f"object ({totals['miss']}); green tint = predicted mask of a correct detection. Each detection's score sits above "
        "its box; where labels would overlap, only the higher score's is shown."
    )
    return png(fig, dpi=80, photo=True, keep_colors=tuple(OUTCOME_COLORS.values())), caption


# ---- sections --------------------------------------------------------------------------------------
def _headline(doc: Document, run: RunFiles) -> None:
    """Title, one summary paragraph (what was trained, on what, how well), and a warning for random init."""
    summary = run.summary
    doc.h(1, run.title)
    doc.p(f"{run.model_title} · generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}", "note")
    train_info = summary.get("train") or {}
    parts = [f"{run.model_title} trained for {run.steps} steps" if run.steps else f"{run.model_title}"]
    if train_info:
        parts.append(
            f"on {train_info.get('images')} labelled images ({train_info.get('instances')} objects, "
            f"{len(train_info.get('instances_per_class', {}))} classes)"
        )
    if (summary.get("target") or {}).get("images"):
        methods = [
            name for key, name in TARGET_IMAGE_METHODS.items() if (run.config.get(key) or {}).get("enabled")
        ]
        how = f" with {' and '.join(methods)}" if methods else ""
        parts.append(f"adapted{how} to {summary['target']['images']} unlabelled target photos")
    headline = " ".join(parts) + "."
    results = []
    for name, m, _ in run.sets:
        seg = m.get("segm") or {}
        label = "held-out validation images" if name == "val" else name
        floor = m.get("floor") or {}
        results.append(
            f"{label}: box AP {fmt(m['bbox']['AP'])} (AP50 {fmt(m['bbox']['AP50'])})"
            + (f", mask AP {fmt(seg.get('AP'))}" if seg else "")
            + (f"; {floor_words(floor)}" if "verdict" in floor else "")
        )
    doc.p(
        headline + (" Results — " + "; ".join(results) + "." if results else " No evaluation yet."), "summary"
    )
    for name, m, _ in run.sets:
        if m.get("note"):
            doc.p(f"{name}: {m['note']}", "warn")
    if str(run.weights).startswith("random init"):
        doc.p(
            "Trained from random initialisation (no pretrained weights were available): expect far lower accuracy "
            "than a pretrained start; put torchvision's weight files in the torch hub cache or pass --weights.",
            "warn",
        )


def _set_notes(name: str, m: dict) -> str | None:
    """What a reader must know to read a set's numbers: no mask AP, class-agnostic, classes left out."""
    notes = []
    if m.get("segm") is None and m.get("segm_skipped"):
        notes.append(f"mask AP not computed: {m['segm_skipped']}")
    if m.get("class_agnostic"):
        one = m["class_names"][0] if len(m["class_names"]) == 1 else m["mapping"]["class_names"][0]
        notes.append(f"class-agnostic: every category counted as '{one}'")
    elif m.get("mapping", {}).get("unmapped"):
        um = m["mapping"]["unmapped"]
        notes.append(
            f"{len(um)} categor{'y' if len(um) == 1 else 'ies'} the model does not know left out "
            f"({', '.join(um[:6])}{' ...' if len(um) > 6 else ''}; {m.get('gt_left_out', 0)} objects)"
        )
    return f"{name}: " + "; ".join(notes) + "." if notes else None


def _accuracy_section(doc: Document, sets: list[tuple[str, dict, Path]]) -> None:
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
                    + [fmt(block.get(c)) for c in METRIC_COLUMNS]
                )
    if rows:
        doc.table(["set", "type", "images", "objects", *METRIC_COLUMNS], rows)
    _floor_table(doc, sets)
    for name, m, _ in sets:
        note = _set_notes(name, m)
        if note:
            doc.p(note, "note")


def floor_words(floor: dict) -> str:
    """One sentence: the AP50 and the blind floor with their intervals, and what that says."""
    return (
        f"class-agnostic AP50 {fmt(floor['AP50'])} {_interval(floor['AP50_ci95'])} against a blind floor of "
        f"{fmt(floor['floor_AP50'])} {_interval(floor['floor_AP50_ci95'])}: {floor['verdict']}"
    )


def _interval(ci) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "[no interval]"


def _floor_table(doc: Document, sets: list[tuple[str, dict, Path]]) -> None:
    """Every AP50 beside what a detector that never looks at the pixels scores on the same images."""
    rows = [
        [
            name,
            fmt(f["AP50"]),
            _interval(f["AP50_ci95"]),
            fmt(f["floor_AP50"]),
            _interval(f["floor_AP50_ci95"]),
            f"{fmt(f['margin'])} {_interval(f['margin_ci95'])}",
            f["verdict"],
        ]
        for name, m, _ in sets
        if (f := m.get("floor")) and "skipped" not in f
    ]
    if not rows:
        return
    doc.h(3, "Beside the blind floor")
    doc.p(
        "The blind floor is the AP50 of a detector that never looks at the pixels: it predicts the commonest "
        "box shapes of the training boxes (k-means over normalised x, y, w, h, scored by share, plus the whole "
        "image) on every image. A score says something about the detector only when the paired interval of "
        "its margin over the floor lies above 0. Intervals: 95 %, bootstrap over the evaluated images.",
        "note",
    )
    doc.table(["set", "AP50", "95 % interval", "floor AP50", "95 % interval", "margin", "verdict"], rows)
    for name, m, _ in sets:
        if (f := m.get("floor")) and "skipped" not in f:
            doc.p(f"{name}: floor fitted on the boxes of {f['prior_from']}.", "note")


def _set_section(doc: Document, name: str, m: dict, eval_dir: Path, max_examples: int) -> None:
    """One evaluated set: per-class AP, precision-recall curves, example pictures."""
    doc.h(2, f"Set '{name}'" + (" (held-out images of the training data)" if name == "val" else ""))
    doc.p(
        f"{m.get('images')} images from {m.get('data')}; checkpoint step {m.get('step')}; "
        f"{m.get('predictions')} detections; inference {fmt(m.get('images_per_s'), 1)} images/s "
        f"on {m.get('device', '?')}.",
        "note",
    )
    seg = m.get("segm") or {}

    def mask_ap(c: str, key: str) -> str:
        return fmt(seg.get("per_class", {}).get(c, {}).get(key)) if seg else "-"

    doc.table(
        ["class", "objects", "box AP", "box AP50", "mask AP", "mask AP50"],
        [
            [c, v["gt"], fmt(v["AP"]), fmt(v["AP50"]), mask_ap(c, "AP"), mask_ap(c, "AP50")]
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
    image, caption = examples_figure(m, eval_dir, max_examples)
    doc.figure(f"examples_{name}", image, caption)


def _training_section(doc: Document, log: dict[str, np.ndarray]) -> None:
    doc.h(2, "Training")
    cap = "Loss terms (log scale), learning rate"
    if "domain_acc" in log:
        cap += (
            "; domain-classifier accuracy: 1.0 means synthetic and real features are trivially separable, "
            "0.5 (chance) means they are aligned"
        )
    doc.figure("training_curves", training_curves_figure(log), cap + ".")
    if "images_per_s" in log:
        ips = log["images_per_s"][np.isfinite(log["images_per_s"])]
        wait = log.get("data_wait_frac", np.array([np.nan]))
        doc.p(
            f"Throughput {np.median(ips):.1f} images/s (median over log intervals); the loop waited for data "
            f"{100 * np.nanmedian(wait):.0f}% of the time.",
            "note",
        )


def _data_rows(summary: dict) -> list[list]:
    """One row per data set the run used: training, validation, unlabelled target."""
    rows = []
    for role in ("train", "val"):
        s = summary.get(role)
        if s and "instances_per_class" in s:
            w, h = s["width_range"], s["height_range"]
            rows.append(
                [
                    role,
                    s["images"],
                    s["instances"],
                    s["instances_per_image"],
                    f"{w[0]}-{w[1]} x {h[0]}-{h[1]}",
                    "yes" if s["has_masks"] else "no",
                    s["path"],
                ]
            )
        elif s:
            rows.append([role, s.get("images"), "", "", "", "", s.get("path")])
    if (summary.get("target") or {}).get("images"):
        rows.append(
            ["target (unlabelled)", summary["target"]["images"], "", "", "", "", summary["target"]["path"]]
        )
    return rows


def _data_section(doc: Document, summary: dict) -> None:
    doc.h(2, "Data")
    rows = _data_rows(summary)
    if rows:
        doc.table(["set", "images", "objects", "objects/image", "size (px)", "masks", "path"], rows)
    train_info = summary.get("train") or {}
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


def _provenance_rows(run: RunFiles) -> list[list]:
    prov = run.provenance
    git = prov.get("git", {})
    device = prov.get("device", {})
    params = prov.get("parameters")
    return [
        ["model", run.model_title],
        ["weights", run.weights],
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
        ["normalisation", NORM_TITLES.get(prov.get("norm"), prov.get("norm", "?"))],
        ["seed", prov.get("seed", run.config.get("seed", "?"))],
        [
            "parameters",
            f"{params / 1e6:.1f} M ({prov.get('trainable_parameters', 0) / 1e6:.1f} M trainable)"
            if params
            else "?",
        ],
        ["augmentation", ", ".join(prov.get("augment") or []) or "none"],
        ["packages", ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())],
        ["command", prov.get("command", "?")],
    ]


def _provenance_section(doc: Document, run: RunFiles) -> None:
    doc.h(2, "Provenance")
    doc.table(["item", "value"], _provenance_rows(run), "kv")
    if run.config_text:
        doc.h(3, "config.yaml")
        doc.pre(run.config_text)


# ---- the report ------------------------------------------------------------------------------------
def write_report(run_dir: str | Path, *, max_examples: int = 6) -> Path:
    """Write RUN_DIR/report.html (self-contained) and RUN_DIR/report.md (+ report_files/); returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    run = read_run(run_dir)
    doc = Document()
    _headline(doc, run)
    _accuracy_section(doc, run.sets)
    for name, metrics, eval_dir in run.sets:
        _set_section(doc, name, metrics, eval_dir, max_examples)
    if run.log:
        _training_section(doc, run.log)
    _data_section(doc, run.summary)
    _provenance_section(doc, run)
    return doc.write(run.path, run.title)
