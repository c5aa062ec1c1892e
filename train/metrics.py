"""Detection metrics computed here rather than by COCOeval: box matching (for pictures of what a detector
got right and wrong), 101-point AP with per-detection weights, and a paired bootstrap of AP50 over test
images (how much a difference between detectors could be luck in the choice of test photos).

Boxes are COCO ``[x, y, width, height]`` throughout; predictions are COCO results dicts
(``bbox``, ``score``, ``category_id``), ground truth COCO annotations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.coco import CocoSource, load_coco

BOOTSTRAP_SAMPLES = 1000
MAX_DETECTIONS = 100  # per image, as COCOeval's AP
# (minuend, subtrahend, name) of the AP50 differences the sim-to-real benchmark reports.
TRANSFER_DIFFERENCES = (
    ("c", "b", "adaptation (c - b)"),
    ("b", "a", "randomization (b - a)"),
    ("e", "d", "fine-tuning (e - d)"),
)


# ---- matching ------------------------------------------------------------------------------------------
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes [N, 4] x [M, 4] (torchvision.ops.box_iou); 0 for two empty boxes."""
    import torch
    from torchvision.ops import box_iou as corner_box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))

    def corners(boxes) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).clone()
        t[:, 2:] += t[:, :2]
        return t

    return np.nan_to_num(corner_box_iou(corners(a), corners(b)).numpy(), nan=0.0)


def _best_f1_threshold(scored: list[tuple[float, bool]], n_gt: int) -> float:
    """The score threshold with the highest F1, given (score, is true positive) of every detection."""
    best_t, best_f1 = 0.5, -1.0
    scored = sorted(scored, key=lambda s: -s[0])
    tp_count = 0
    for k, (score, is_tp) in enumerate(scored):
        tp_count += is_tp
        if k + 1 < len(scored) and scored[k + 1][0] == score:
            continue  # a threshold keeps every detection of equal score
        f1 = 2 * tp_count / (k + 1 + n_gt) if (k + 1 + n_gt) else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, score
    return best_t


def _match_image(gts: list[dict], preds: list[dict], iou: float) -> tuple[set[int], set[int]]:
    """(matched prediction indices, matched ground-truth indices) of one image."""
    used_gt: set[int] = set()
    tp: set[int] = set()
    if not preds or not gts:
        return tp, used_gt
    ious = box_iou(np.array([p["bbox"] for p in preds], float), np.array([g["bbox"] for g in gts], float))
    for i in sorted(range(len(preds)), key=lambda i: -preds[i]["score"]):
        cands = [
            (ious[i, j], j)
            for j in range(len(gts))
            if j not in used_gt and gts[j]["category_id"] == preds[i]["category_id"] and ious[i, j] >= iou
        ]
        if cands:
            j = max(cands)[1]
            used_gt.add(j)
            tp.add(i)
    return tp, used_gt


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
        tp, used_gt = _match_image(gts, preds, iou)
        matches[image_id] = (tp, used_gt)
        scored += [(preds[i]["score"], i in tp) for i in range(len(preds))]
    return matches, _best_f1_threshold(scored, n_gt)


def detections_at_best_f1(
    gt_by_image: dict[int, list[dict]], preds_by_image: dict[int, list[dict]], iou: float = 0.5
) -> tuple[dict[int, list[dict]], dict, float]:
    """What a picture of a detector's output shows: per image the detections at or above the score that
    maximises F1 over all images, and their matching. Returns (kept, matches, threshold)."""
    _, threshold = match_predictions(gt_by_image, preds_by_image, iou)
    kept = {i: [p for p in preds_by_image.get(i, []) if p["score"] >= threshold] for i in gt_by_image}
    matches, _ = match_predictions(gt_by_image, kept, iou)
    return kept, matches, threshold


# ---- average precision ---------------------------------------------------------------------------------
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


# ---- the bootstrap -------------------------------------------------------------------------------------
def _detections_table(
    source: CocoSource, predictions: list[dict], ids: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class-agnostic matching at IoU 0.5, once: (score, true positive, image index) of every detection on
    the images ``ids``, sorted by descending score, and labelled objects per image (crowd regions left out)."""
    gt = {
        i: [{"bbox": a["bbox"], "category_id": 1} for a in source.anns_by_image[i] if not a.get("iscrowd", 0)]
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


def _ci95(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def interval_side(ci95: Sequence[float] | None) -> str | None:
    """Where a 95 % interval of a difference lies: "above" 0, "below" 0, "across" 0, or None without one."""
    if not ci95:
        return None
    return "above" if ci95[0] > 0 else "below" if ci95[1] < 0 else "across"


def _ratios(draws: dict, estimate: dict, reference: str) -> dict:
    """Each variant's AP50 over the reference's, per resample and as a point estimate."""
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in draws:
            if k != reference:
                est = estimate[k] / estimate[reference] if estimate[reference] else float("nan")
                out[k] = {
                    "estimate": round(est, 4) if math.isfinite(est) else None,
                    "ci95": _ci95(draws[k] / draws[reference]),
                }
    return out


@dataclass(frozen=True)
class TestFold:
    """One test split and what each variant predicted on it: ``runs[k]`` holds one prediction list per
    training run (seed) of variant ``k``. Cross-validated benchmarks bring several disjoint folds."""

    source: CocoSource
    image_ids: list[int]
    runs: dict[str, list[list[dict]]]


def bootstrap_transfer(
    test_coco: str | Path | CocoSource,
    predictions: dict[str, list[dict] | list[list[dict]]],
    *,
    image_ids: Sequence[int] | None = None,
    reference: str | None = "d",
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    differences: Sequence[tuple[str, str, str]] = TRANSFER_DIFFERENCES,
) -> dict:
    """95 % intervals for every variant's AP50, for the `differences` (a - b, name) and for the ratio to
    ``reference``, by a paired bootstrap over test images (every variant sees the same resampled images).

    AP50 is recomputed here with the same greedy matching COCOeval uses, class-agnostic; the point estimate
    agrees with COCOeval's AP50 to within rounding when the test set has no crowd regions. ``image_ids``
    restricts the test to those images (a held-out split of a set).

    A variant may bring several training runs (a list of prediction lists, one per training seed): its
    estimate is their mean AP50, and each resample also draws its runs with replacement, so the interval
    covers the spread between training seeds as well as the choice of test photos."""
    source = test_coco if isinstance(test_coco, CocoSource) else load_coco(test_coco, check_files=False)
    ids = sorted(source.images) if image_ids is None else sorted(image_ids)
    runs = {k: p if p and isinstance(p[0], list) else [p] for k, p in predictions.items()}
    return bootstrap_folds(
        [TestFold(source, ids, runs)],
        reference=reference,
        samples=samples,
        seed=seed,
        differences=differences,
    )


def bootstrap_folds(
    folds: Sequence[TestFold],
    *,
    reference: str | None = "d",
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    differences: Sequence[tuple[str, str, str]] = TRANSFER_DIFFERENCES,
) -> dict:
    """``bootstrap_transfer`` over several disjoint test folds, each scored by its own training runs.

    A variant's AP50 is the mean of its per-fold AP50s weighted by labelled objects (the folds' models rank
    their detections on their own score scales, so detections are not pooled across folds). Each resample
    draws every fold's images (and each variant's runs in that fold) with replacement, so the interval
    covers the choice of photos in every fold and the spread between seeds. Every fold must hold every
    variant; with one fold this is exactly ``bootstrap_transfer``."""
    keys = list(folds[0].runs) if folds else []
    for i, f in enumerate(folds):
        if set(f.runs) != set(keys) or any(not f.runs[k] for k in keys):
            raise ValueError(
                f"test fold {i} holds variants {sorted(f.runs)}; every fold needs {sorted(keys)}"
            )
    tables = [
        {k: [_detections_table(f.source, r, f.image_ids) for r in f.runs[k]] for k in keys} for f in folds
    ]
    n_images = [len(f.image_ids) for f in folds]
    if not keys or min(n_images) == 0:
        return {}
    n_gt = [next(iter(t.values()))[0][3] for t in tables]
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(samples) for k in keys}
    for s in range(samples):
        totals, per_fold = [], {k: [] for k in keys}
        for t, n, gt in zip(tables, n_images, n_gt, strict=True):
            mult = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
            total = float((mult * gt).sum())
            totals.append(total)
            for k, ts in t.items():
                picked = ts if len(ts) == 1 else [ts[j] for j in rng.integers(0, len(ts), len(ts))]
                per_fold[k].append(np.mean([average_precision(x[1], mult[x[2]], total) for x in picked]))
        for k in keys:
            draws[k][s] = _weighted(per_fold[k], totals)
    per_run = [
        {
            k: [average_precision(x[1], np.ones_like(x[1]), float(x[3].sum())) for x in ts]
            for k, ts in t.items()
        }
        for t in tables
    ]
    weights = [float(gt.sum()) for gt in n_gt]
    estimate = {k: _weighted([float(np.mean(r[k])) for r in per_run], weights) for k in keys}
    most_runs = max(len(ts) for t in tables for ts in t.values())
    if len(folds) == 1:
        method = f"paired bootstrap over the {n_images[0]} test images ({samples} resamples, seed {seed})"
    else:
        method = (
            f"paired bootstrap over the {sum(n_images)} test images of {len(folds)} disjoint test folds "
            f"({' + '.join(map(str, n_images))}), resampled within each fold ({samples} resamples, seed "
            f"{seed}); AP50 is the mean of the folds' AP50s weighted by their labelled objects"
        )
    if most_runs > 1:
        method += ", each variant's training runs resampled with them"
    out = {
        "method": method + ", class-agnostic AP50",
        "samples": samples,
        "AP50": {
            k: {
                "estimate": round(estimate[k], 4),
                "ci95": _ci95(draws[k]),
                **(
                    {"runs": [round(a, 4) for a in per_run[0][k]]}
                    if len(folds) == 1 and len(per_run[0][k]) > 1
                    else {}
                ),
            }
            for k in keys
        },
        "differences": {
            name: {"estimate": round(estimate[a] - estimate[b], 4), "ci95": _ci95(draws[a] - draws[b])}
            for a, b, name in differences
            if a in draws and b in draws
        },
        "ratio_to_reference": _ratios(draws, estimate, reference) if reference in draws else {},
    }
    if len(folds) > 1:
        out["folds"] = [
            {
                "images": n,
                "objects": int(w),
                "AP50": {k: [round(a, 4) for a in r[k]] for k in keys},
            }
            for n, w, r in zip(n_images, weights, per_run, strict=True)
        ]
    return out


def _weighted(values: Sequence[float], weights: Sequence[float]) -> float:
    if len(values) == 1:  # one fold: its value exactly, as bootstrap_transfer has always reported
        return float(values[0])
    return float(np.dot(values, weights) / np.sum(weights))
