"""The blind floor: the AP50 of a detector that never looks at the pixels.

On sets whose objects are large and centred (shelf photos), predicting the commonest box shapes of the
training boxes on every image already scores AP50 ≈ 0.12; a real-photo AP is only evidence of transfer when
its interval clears that floor. The prior is fitted on the training boxes (the real train split when there
is one): k-means over normalised (x, y, w, h), each centre scored by the share of boxes in its cluster, plus
the whole image, scored by the share of training boxes it would match at IoU 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.coco import CocoSource
from train.metrics import BOOTSTRAP_SAMPLES, bootstrap_transfer, box_iou, interval_side

PRIOR_BOXES = 20
MAX_DETECTIONS = 100  # per image, as COCOeval's AP
_WHOLE_IMAGE_MIN_SCORE = (
    1e-6  # the whole image is always predicted, below every cluster when it never matches
)


@dataclass(frozen=True)
class BlindPrior:
    """Box shapes in image-relative (x, y, w, h), each with a score, and how often each class occurs."""

    boxes: np.ndarray  # [K, 4]
    scores: np.ndarray  # [K]
    class_share: dict[str, float]


def _normalised_boxes(source: CocoSource, image_ids: list[int] | None) -> tuple[np.ndarray, list[str]]:
    names = {c["id"]: c["name"] for c in source.categories}
    boxes, labels = [], []
    for image_id in sorted(source.images) if image_ids is None else image_ids:
        info = source.images[image_id]
        w, h = float(info["width"]), float(info["height"])
        for a in source.anns_by_image[image_id]:
            x0, y0, bw, bh = (float(v) for v in a["bbox"])
            if a.get("iscrowd", 0) or bw <= 0 or bh <= 0:
                continue
            boxes.append((x0 / w, y0 / h, bw / w, bh / h))
            labels.append(names[a["category_id"]])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels


def fit_blind_prior(
    source: CocoSource, k: int = PRIOR_BOXES, seed: int = 0, image_ids: list[int] | None = None
) -> BlindPrior:
    """The ``k`` commonest box shapes of ``source`` (of its images ``image_ids``; k-means, seeded) plus the
    whole image."""
    from scipy.cluster.vq import kmeans2

    boxes, labels = _normalised_boxes(source, image_ids)
    if not len(boxes):
        raise ValueError(f"{source.ann_file}: no boxes to fit a blind prior on")
    unique = np.unique(boxes, axis=0)
    if len(unique) <= k:
        centres = unique
        assign = np.array([int(np.flatnonzero((unique == b).all(axis=1))[0]) for b in boxes])
    else:
        centres, assign = kmeans2(boxes, k, seed=np.random.default_rng(seed), minit="++")
    counts = np.bincount(assign, minlength=len(centres)).astype(np.float64)
    keep = counts > 0
    centres, shares = centres[keep], counts[keep] / len(boxes)
    whole = np.array([0.0, 0.0, 1.0, 1.0])
    whole_share = float((box_iou(whole[None], boxes)[0] >= 0.5).mean())
    order = np.argsort(-shares, kind="stable")
    all_boxes = np.vstack([centres[order], whole])
    all_scores = np.append(shares[order], max(whole_share, _WHOLE_IMAGE_MIN_SCORE))
    names, n = np.unique(labels, return_counts=True)
    return BlindPrior(
        all_boxes, all_scores, {str(a): float(c) / len(labels) for a, c in zip(names, n, strict=True)}
    )


def blind_predictions(
    prior: BlindPrior, images: list[dict], category_ids: dict[str, int] | None = None
) -> list[dict]:
    """COCO results: the prior's boxes on every image. Without ``category_ids`` the boxes are class-agnostic
    (category 1); with them, each box is repeated per class, scored by box share × class share."""
    classes = [(1, 1.0)] if category_ids is None else []
    if category_ids is not None:
        classes = [(cid, prior.class_share.get(name, 0.0)) for name, cid in category_ids.items()]
        classes = [(cid, share) for cid, share in classes if share > 0]
    results = []
    for info in images:
        w, h = float(info["width"]), float(info["height"])
        dets = [
            (float(score * share), cid, box)
            for box, score in zip(prior.boxes, prior.scores, strict=True)
            for cid, share in classes
        ]
        dets.sort(key=lambda d: -d[0])
        for score, cid, (x, y, bw, bh) in dets[:MAX_DETECTIONS]:
            results.append(
                {
                    "image_id": info["id"],
                    "category_id": cid,
                    "bbox": [round(x * w, 2), round(y * h, 2), round(bw * w, 2), round(bh * h, 2)],
                    "score": round(score, 6),
                }
            )
    return results


def floor_comparison(
    source: CocoSource,
    predictions: list[dict],
    prior_source: CocoSource,
    *,
    image_ids: list[int] | None = None,
    prior_ids: list[int] | None = None,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict:
    """A detector's class-agnostic AP50 on ``source`` (its images ``image_ids``) beside the blind floor
    fitted on the boxes of ``prior_source`` (its images ``prior_ids``), both with 95 % intervals from one
    paired bootstrap over the test images, and the verdict in words."""
    ids = sorted(source.images) if image_ids is None else sorted(image_ids)
    prior = fit_blind_prior(prior_source, image_ids=prior_ids)
    floor = blind_predictions(prior, [source.images[i] for i in ids])
    boot = bootstrap_transfer(
        source,
        {"model": predictions, "floor": floor},
        image_ids=ids,
        reference=None,
        samples=samples,
        seed=seed,
        differences=[("model", "floor", "margin")],
    )
    ap50, margin = boot["AP50"], boot["differences"]["margin"]
    return {
        "AP50": ap50["model"]["estimate"],
        "AP50_ci95": ap50["model"]["ci95"],
        "floor_AP50": ap50["floor"]["estimate"],
        "floor_AP50_ci95": ap50["floor"]["ci95"],
        "margin": margin["estimate"],
        "margin_ci95": margin["ci95"],
        "verdict": floor_verdict(margin["ci95"]),
        "prior_from": prior_source.name,
        "method": f"blind floor: the {len(prior.boxes) - 1} commonest normalised box shapes of "
        f"{prior_source.name}'s boxes (k-means, scored by cluster share) plus the whole image, predicted on "
        f"every test image without looking at it; class-agnostic AP50, {boot['method']}",
    }


def floor_verdict(margin_ci95: list[float] | None) -> str:
    """In words, from the paired interval of (detector AP50 - floor AP50)."""
    return {
        None: "no interval to compare with the floor",
        "above": "above the floor",
        "below": "below the floor",
        "across": "not distinguishable from the floor",
    }[interval_side(margin_ci95)]
