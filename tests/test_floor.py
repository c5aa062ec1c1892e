"""train.floor: the blind prior that never looks at pixels, checked against hand-computed cases."""

import json

import numpy as np
import pytest

from synth.coco import load_coco
from train.floor import blind_predictions, fit_blind_prior, floor_comparison, floor_verdict

P = [10, 10, 30, 30]  # three of the four training boxes
Q = [50, 50, 40, 40]  # the fourth
R = [0, 60, 20, 20]  # a test box no prior shape matches


def _coco(path, boxes_per_image, names=("thing",)):
    images, anns = [], []
    for i, boxes in enumerate(boxes_per_image, start=1):
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100})
        for box, cat in boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": cat,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    cats = [{"id": k, "name": n} for k, n in enumerate(names, start=1)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_prior_is_the_box_shares_plus_the_whole_image(tmp_path):
    train = _coco(tmp_path / "train.json", [[(P, 1)], [(P, 1)], [(P, 2)], [(Q, 1)]], names=("a", "b"))
    prior = fit_blind_prior(load_coco(train, check_files=False))
    np.testing.assert_allclose(prior.boxes, [[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.4, 0.4], [0, 0, 1, 1]])
    # P holds 3 of 4 boxes, Q 1; the whole image overlaps P by 0.09 and Q by 0.16, so it never matches
    np.testing.assert_allclose(prior.scores, [0.75, 0.25, 1e-6])
    assert prior.class_share == {"a": 0.75, "b": 0.25}

    per_class = blind_predictions(prior, [{"id": 7, "width": 200, "height": 100}], {"a": 1, "b": 2})
    top = per_class[0]
    assert top == {"image_id": 7, "category_id": 1, "bbox": [20.0, 10.0, 60.0, 30.0], "score": 0.5625}
    assert [round(d["score"], 4) for d in per_class[:3]] == [0.5625, 0.1875, 0.1875]


def test_floor_ap50_matches_the_hand_computed_value(tmp_path):
    train = load_coco(
        _coco(tmp_path / "train.json", [[(P, 1)], [(P, 1)], [(P, 1)], [(Q, 1)]]), check_files=False
    )
    test = load_coco(_coco(tmp_path / "test.json", [[(Q, 1), (R, 1)]]), check_files=False)
    perfect = [
        {"image_id": 1, "category_id": 1, "bbox": box, "score": 0.9} for box in (Q, R)
    ]  # a detector that finds both objects
    floor = floor_comparison(test, perfect, train, samples=50)
    # the floor ranks P (0.75, a false positive), Q (0.25, a true positive: recall 1/2 at precision 1/2), then
    # the whole image (false positive). COCO AP samples 101 recall points: 0.00 .. 0.50 have precision 0.5,
    # the rest 0 -> 51 * 0.5 / 101
    assert floor["floor_AP50"] == pytest.approx(51 * 0.5 / 101, abs=1e-4)
    assert floor["floor_AP50_ci95"] == [pytest.approx(floor["floor_AP50"], abs=1e-4)] * 2  # one image
    assert floor["AP50"] == 1.0 and floor["margin"] == pytest.approx(1 - 51 * 0.5 / 101, abs=1e-4)
    assert floor["verdict"] == "above the floor" and "without looking" in floor["method"]

    blind = floor_comparison(test, [], train, samples=50)  # a detector that finds nothing is below it
    assert blind["AP50"] == 0.0 and blind["verdict"] == "below the floor"


def test_floor_verdict_reads_the_paired_interval():
    assert floor_verdict([0.05, 0.20]) == "above the floor"
    assert floor_verdict([-0.02, 0.20]) == "not distinguishable from the floor"
    assert floor_verdict([-0.30, -0.01]) == "below the floor"
    assert floor_verdict(None) == "no interval to compare with the floor"
