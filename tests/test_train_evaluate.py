"""train.evaluate + train.report: COCO metrics, category mapping, checkpoints, reports, real shared sets."""

from __future__ import annotations

import json
import re

import pytest
from pycocotools.coco import COCO
from train_fixtures import SHARED, make_shapes_coco, tiny_train_config

from synth.coco import load_coco
from synth.errors import ConfigError
from train.config import TrainConfig
from train.data import DataError, build_label_map
from train.engine import train
from train.evaluate import coco_metrics, evaluate, remapped_ground_truth
from train.metrics import match_predictions
from train.report import write_report


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_coco(tmp_path_factory.mktemp("shapes"), n_images=10, size=64, seed=1)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, shapes):
    """A few steps of the tiny Mask R-CNN with a held-out split (so eval/val exists)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(TrainConfig(**tiny_train_config(shapes, out, steps=3, val_fraction=0.3)))


def _gt(shapes):
    src = load_coco(shapes)
    gt, dropped = remapped_ground_truth(src, build_label_map(src.categories), sorted(src.images))
    assert dropped == 0
    return gt


def test_coco_metrics_perfect_empty_and_shifted(shapes):
    gt = _gt(shapes)
    perfect = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
            "segmentation": a["segmentation"],
        }
        for a in gt["annotations"]
    ]
    for kind in ("bbox", "segm"):
        m = coco_metrics(gt, perfect, kind)
        assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
        assert all(v["AP"] == pytest.approx(1.0) for v in m["per_class"].values())
        assert len(m["pr_curves"]["box"]["iou50"]) == 101 and "Average Precision" in m["summary"]
    empty = coco_metrics(gt, [], "bbox")
    assert empty["AP"] == 0.0 and empty["per_class"]["disc"]["AP"] == 0.0
    shifted = [{**p, "bbox": [p["bbox"][0] + p["bbox"][2] * 0.25, *p["bbox"][1:]]} for p in perfect]
    m = coco_metrics(gt, [{k: v for k, v in p.items() if k != "segmentation"} for p in shifted], "bbox")
    assert 0.0 < m["AP"] < 1.0 and m["AP50"] == pytest.approx(1.0)  # IoU 0.75 > 0.5 for a quarter shift
    wrong_class = [{**p, "category_id": 3 - p["category_id"]} for p in perfect]
    assert coco_metrics(gt, wrong_class, "bbox")["AP"] == 0.0


def test_report_matching_threshold_picks_best_f1():
    gts = {1: [{"bbox": [0, 0, 10, 10], "category_id": 1}, {"bbox": [20, 20, 10, 10], "category_id": 1}]}
    preds = {
        1: [
            {"bbox": [0, 0, 10, 10], "category_id": 1, "score": 0.9},
            {"bbox": [50, 50, 10, 10], "category_id": 1, "score": 0.8},  # false positive
            {"bbox": [21, 21, 10, 10], "category_id": 1, "score": 0.3},
        ]
    }  # true positive, low score
    matches, t = match_predictions(gts, preds)
    assert matches[1] == ({0, 2}, {0, 1}) and t == pytest.approx(0.3)  # F1 3 dets = 0.8 beats 0.67


def test_training_writes_val_metrics_and_evaluate_checkpoint(trained_run, shapes, tmp_path):
    val = json.loads((trained_run / "eval" / "val" / "metrics.json").read_text())
    assert val["images"] == 3 and val["segm"] is not None and val["bbox"]["AP"] is not None
    m = evaluate(trained_run / "checkpoints" / "last.pt", shapes, device="cpu")
    out = trained_run / "eval" / shapes.name
    assert m["out_dir"] == str(out) and m["step"] == 3 and m["images"] == 10
    assert m["mapping"]["mode"] == "by-name" and m["categories"] == [
        {"id": 1, "name": "box"},
        {"id": 2, "name": "disc"},
    ]
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert key in m["bbox"] and key in m["segm"]
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == m["predictions"] > 0 and {"bbox", "score", "segmentation", "category_name"} <= set(
        preds[0]
    )
    gt = COCO(str(shapes / "annotations.json"))
    gt.loadRes([{k: v for k, v in p.items() if k != "category_name"} for p in preds])  # valid COCO results

    agn = evaluate(
        trained_run / "checkpoints" / "last.pt",
        shapes,
        device="cpu",
        class_agnostic="shape",
        out_dir=tmp_path / "agn",
    )
    assert agn["categories"] == [{"id": 1, "name": "shape"}] and agn["class_agnostic"]
    assert agn["gt_instances"] == m["gt_instances"]
    assert {p["category_id"] for p in json.loads((tmp_path / "agn" / "predictions.json").read_text())} <= {1}

    cmap = tmp_path / "map.yaml"
    cmap.write_text("box: disc\n")  # evaluate only the boxes, counted as the model's 'disc' class
    mapped = evaluate(
        trained_run / "checkpoints" / "last.pt",
        shapes,
        device="cpu",
        category_map=cmap,
        out_dir=tmp_path / "mapped",
    )
    assert mapped["categories"] == [{"id": 2, "name": "disc"}] and mapped["mapping"]["unmapped"] == ["disc"]
    assert mapped["gt_left_out"] > 0

    renamed = json.loads((shapes / "annotations.json").read_text())
    renamed["categories"] = [{"id": 1, "name": "mug"}, {"id": 2, "name": "bowl"}]
    (shapes / "renamed.json").write_text(json.dumps(renamed))
    with pytest.raises(DataError, match="--class-agnostic or --category-map"):
        evaluate(
            trained_run / "checkpoints" / "last.pt",
            shapes / "renamed.json",
            device="cpu",
            out_dir=tmp_path / "x",
        )
    with pytest.raises(ConfigError, match="checkpoint not found"):
        evaluate(tmp_path / "nope.pt", shapes)


def test_report_is_self_contained_and_readable(trained_run):
    html_path = write_report(trained_run)
    page = html_path.read_text()
    assert html_path == trained_run / "report.html"
    assert len(re.findall(r"src='data:image/png;base64,", page)) >= 4  # PR curves, examples, training curves
    assert "<script" not in page and "src='http" not in page and "<link" not in page  # nothing fetched
    for text in (
        "Accuracy (COCO metrics)",
        "Set &#39;val&#39;",
        "Training",
        "Provenance",
        "random init",
        "box AP",
        "false positive",
        "torchvision",
        "Beside the blind floor",
        "against a blind floor of",
    ):
        assert text in page, text
    floor = json.loads((trained_run / "eval" / "val" / "metrics.json").read_text())["floor"]
    assert floor["prior_from"] and floor["verdict"] in (
        "above the floor",
        "below the floor",
        "not distinguishable from the floor",
    )
    assert floor["margin"] == pytest.approx(floor["AP50"] - floor["floor_AP50"], abs=1e-3)
    md = (trained_run / "report.md").read_text()
    pngs = re.findall(r"\]\((report_files/[^)]+\.png)\)", md)
    assert pngs and all((trained_run / p).is_file() for p in pngs)


REAL_SETS = ("real/retail/ycbv_sample", "real/industrial/amv_screws_valid")


@pytest.mark.slow
@pytest.mark.shared
def test_real_shared_sets_evaluate_and_report(trained_run):
    """Acceptance: evaluation on the real photo sets runs, gives numbers (box + mask) and a report."""
    missing = [rel for rel in REAL_SETS if not (SHARED / rel / "annotations.json").is_file()]
    if missing:
        pytest.skip(f"shared real data not found: {SHARED / missing[0]} (set SIMREAL_SHARED)")
    for rel in REAL_SETS:
        data = SHARED / rel
        m = evaluate(trained_run / "checkpoints" / "last.pt", data, device="cpu", class_agnostic=True)
        src = load_coco(data)
        assert m["images"] == len(src.images) and m["gt_instances"] == len(src.dataset["annotations"])
        for kind in ("bbox", "segm"):  # both sets have masks (RLE for ycbv, polygons for the screws)
            assert isinstance(m[kind]["AP"], float) and 0.0 <= m[kind]["AP"] <= 1.0
        # the floor is fitted on the checkpoint's own training set when no real train split is given
        assert m["floor"]["prior_from"] and 0.0 <= m["floor"]["floor_AP50"] <= 1.0
    page = write_report(trained_run).read_text()
    for rel in REAL_SETS:
        assert f"Set &#39;{rel.rsplit('/', 1)[1]}&#39;" in page
    assert "class-agnostic" in page and "missed object" in page
