"""train.metrics: box IoU, greedy matching, the F1-best threshold, 101-point AP and the paired bootstrap,
on cases small enough to compute by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from train.metrics import (
    average_precision,
    bootstrap_transfer,
    box_iou,
    detections_at_best_f1,
    match_predictions,
)


def _box(x, y, w, h, cat=1, score=None) -> dict:
    d = {"bbox": [x, y, w, h], "category_id": cat}
    if score is not None:
        d["score"] = score
    return d


# ---- IoU -----------------------------------------------------------------------------------------------
def test_box_iou_of_xywh_boxes_by_hand():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 5, 5], [20, 20, 4, 4], [10, 0, 10, 10]], float)
    # identical; half-shifted: 50 / 150; contained: 25 / 100; disjoint; touching edges
    assert box_iou(a, b) == pytest.approx(np.array([[1.0, 1 / 3, 0.25, 0.0, 0.0]]))
    assert box_iou(b, a) == pytest.approx(box_iou(a, b).T)  # symmetric


def test_box_iou_shapes_and_degenerate_boxes():
    assert box_iou(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)
    assert box_iou(np.ones((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    empty = np.array([[3, 3, 0, 0]], float)
    assert box_iou(empty, empty) == pytest.approx(np.array([[0.0]]))  # 0 / 0 counts as no overlap, not NaN


# ---- matching ------------------------------------------------------------------------------------------
def test_matching_is_greedy_by_score_and_one_to_one():
    gts = {1: [_box(0, 0, 10, 10)]}
    preds = {1: [_box(1, 0, 10, 10, score=0.4), _box(0, 0, 10, 10, score=0.9)]}
    matches, _ = match_predictions(gts, preds)
    assert matches[1] == ({1}, {0})  # the higher score takes the object; the duplicate is a false positive


def test_matching_needs_the_same_class_and_enough_overlap():
    gts = {1: [_box(0, 0, 10, 10, cat=1)]}
    assert match_predictions(gts, {1: [_box(0, 0, 10, 10, cat=2, score=0.9)]})[0][1] == (set(), set())
    half = {1: [_box(0, 0, 10, 5, score=0.9)]}  # IoU exactly 0.5
    assert match_predictions(gts, half)[0][1] == ({0}, {0})
    assert match_predictions(gts, half, iou=0.6)[0][1] == (set(), set())


def test_a_detection_takes_the_object_it_overlaps_most():
    gts = {1: [_box(0, 0, 10, 10), _box(4, 0, 10, 10)]}
    preds = {1: [_box(3, 0, 10, 10, score=0.9)]}  # IoU 0.54 with the first, 0.82 with the second
    assert match_predictions(gts, preds)[0][1] == ({0}, {1})


def test_images_without_predictions_or_objects():
    gts = {1: [_box(0, 0, 10, 10)], 2: []}
    preds = {2: [_box(0, 0, 10, 10, score=0.7)]}
    matches, threshold = match_predictions(gts, preds)
    assert matches == {1: (set(), set()), 2: (set(), set())}
    assert threshold == pytest.approx(0.7)  # the only score there is


def test_best_f1_threshold_keeps_equal_scores_together():
    gts = {1: [_box(0, 0, 10, 10), _box(20, 0, 10, 10)]}
    preds = {
        1: [
            _box(0, 0, 10, 10, score=0.8),
            _box(50, 50, 10, 10, score=0.5),  # false positive, same score as the next true positive
            _box(20, 0, 10, 10, score=0.5),
        ]
    }
    # at 0.8: F1 = 2*1/(1+2) = 0.667; at 0.5 (all three): 2*2/(3+2) = 0.8
    assert match_predictions(gts, preds)[1] == pytest.approx(0.5)


def test_detections_at_best_f1_drops_what_the_threshold_drops():
    gts = {1: [_box(0, 0, 10, 10)], 2: [_box(0, 0, 10, 10)]}
    preds = {
        1: [_box(0, 0, 10, 10, score=0.9), _box(40, 40, 5, 5, score=0.2)],
        2: [_box(0, 0, 10, 10, score=0.8)],
    }
    kept, matches, threshold = detections_at_best_f1(gts, preds)
    assert threshold == pytest.approx(0.8)
    assert [p["score"] for p in kept[1]] == [0.9] and matches == {1: ({0}, {0}), 2: ({0}, {0})}


# ---- average precision ---------------------------------------------------------------------------------
def test_average_precision_by_hand():
    tp = np.array([1.0, 0.0, 1.0])
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: envelope 1 up to recall 0.5 (51 points), then 2/3
    assert average_precision(tp, np.ones(3), 2) == pytest.approx((51 + 50 * 2 / 3) / 101)
    # the first detection counted twice: recall 2/3 at precision 1 (67 points), then envelope 3/4 (34)
    assert average_precision(tp, np.array([2.0, 1.0, 1.0]), 3) == pytest.approx((67 + 34 * 0.75) / 101)
    # recall never passes 0.5: the points above it score 0
    assert average_precision(np.array([1.0]), np.ones(1), 2) == pytest.approx(51 / 101)
    assert average_precision(np.array([1.0]), np.zeros(1), 2) == 0.0  # every detection weighted out
    assert np.isnan(average_precision(tp, np.ones(3), 0))  # nothing to find: undefined


# ---- the bootstrap -------------------------------------------------------------------------------------
def _tiny_test_set(root):
    root.mkdir()
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in (1, 2, 3)]
    anns = [
        {"id": k + 1, "image_id": i, "category_id": 1, "bbox": [10.0, 10.0, 20.0, 20.0], "iscrowd": 0}
        for k, i in enumerate((1, 2, 3))
    ]
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def test_bootstrap_of_a_perfect_and_a_blind_detector(tmp_path):
    test = _tiny_test_set(tmp_path / "test")
    perfect = [{"image_id": i, "category_id": 7, "bbox": [10, 10, 20, 20], "score": 0.9} for i in (1, 2, 3)]
    half = perfect[:2] + [{"image_id": 3, "category_id": 7, "bbox": [60, 60, 20, 20], "score": 0.95}]
    out = bootstrap_transfer(
        test,
        {"real": perfect, "sim": half},
        reference="real",
        samples=50,
        seed=3,
        differences=[("sim", "real", "sim - real")],
    )
    assert out["AP50"]["real"] == {"estimate": 1.0, "ci95": [1.0, 1.0]}  # class-agnostic: category 7 counts
    # sim: the false positive outranks both hits: precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3
    assert out["AP50"]["sim"]["estimate"] == pytest.approx(round((67 * 2 / 3) / 101, 4))
    lo, hi = out["AP50"]["sim"]["ci95"]
    assert 0.0 <= lo <= out["AP50"]["sim"]["estimate"] <= hi <= 1.0
    assert set(out["differences"]) == {"sim - real"} and out["differences"]["sim - real"]["estimate"] < 0
    assert set(out["ratio_to_reference"]) == {"sim"}
    assert out["ratio_to_reference"]["sim"]["estimate"] == out["AP50"]["sim"]["estimate"]
    assert bootstrap_transfer(test, {"real": perfect}, samples=5)["differences"] == {}  # pairs not present


def test_bootstrap_of_a_variant_trained_with_several_seeds(tmp_path):
    """Two training runs of one variant: the estimate is their mean AP50 and the interval spans both runs."""
    test = _tiny_test_set(tmp_path / "test")
    perfect = [{"image_id": i, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9} for i in (1, 2, 3)]
    half = perfect[:2] + [{"image_id": 3, "category_id": 1, "bbox": [60, 60, 20, 20], "score": 0.95}]
    half_ap = (67 * 2 / 3) / 101
    out = bootstrap_transfer(test, {"seeds": [perfect, half], "one": perfect}, reference="one", samples=400)
    seeds = out["AP50"]["seeds"]
    assert seeds["estimate"] == pytest.approx(round((1.0 + half_ap) / 2, 4))
    assert seeds["runs"] == [1.0, pytest.approx(round(half_ap, 4))]
    lo, hi = seeds["ci95"]
    assert lo < seeds["estimate"] < hi == 1.0  # a resample may draw the perfect run twice
    assert "runs" not in out["AP50"]["one"] and out["AP50"]["one"]["ci95"] == [1.0, 1.0]
    assert "training runs resampled" in out["method"]
    # one run given as a list of runs is the same as the run itself
    assert bootstrap_transfer(test, {"x": [half]}, samples=50) == bootstrap_transfer(
        test, {"x": half}, samples=50
    )
