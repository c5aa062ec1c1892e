"""The sim-to-real benchmark: leak-free real splits (train.splits), the comparison report (train.compare),
the recipe files and parameters (bench.sim2real), the CLI, the protocol with plain runners, and the whole
Prefect flow at toy scale (flows/sim2real.py)."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from train_fixtures import make_shapes_coco

from bench.sim2real.variants import VARIANT_BY_KEY
from synth.coco import load_coco
from synth.errors import ConfigError
from train.data import DataError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMREAL_SHARED", REPO.parent / "shared"))
FREIBURG = SHARED / "real" / "retail" / "freiburg_dev"


def _rename_as_copies(root: Path, copies: int = 3) -> Path:
    """Rename a shapes set so every `copies` images look like one photo's augmented exports (Roboflow style)."""
    ann = json.loads((root / "annotations.json").read_text())
    for k, img in enumerate(ann["images"]):
        new = f"images/photo_{k // copies}_jpg.rf.{k:032x}.png"
        (root / img["file_name"]).rename(root / new)
        img["file_name"] = new
    (root / "annotations.json").write_text(json.dumps(ann))
    return root


# ---- splits -------------------------------------------------------------------------------------------
def test_photo_group_strips_export_copy_suffix():
    from train.splits import photo_group

    assert (
        photo_group("images/train_picture_10_jpg.rf.2bc399da37b2264dec1b8bf0f3d5a405.jpg")
        == "train_picture_10"
    )
    assert photo_group("BEANS0001.jpg") == "BEANS0001"
    assert photo_group("a/b/scan.rf.notahash.png") == "scan.rf.notahash"


def test_split_keeps_every_copy_of_a_photo_on_one_side_and_is_deterministic(tmp_path):
    from train.splits import photo_group, split_by_photo

    src = load_coco(
        _rename_as_copies(make_shapes_coco(tmp_path / "set", n_images=30, size=48, seed=3, side=(8, 20)))
    )
    split = split_by_photo(src, 0.3, seed=7)
    assert split.groups == 10 and len(split.test_ids) == 9 and len(split.train_ids) == 21
    assert set(split.train_ids).isdisjoint(split.test_ids)
    assert sorted(split.train_ids + split.test_ids) == sorted(src.images)
    side = {}
    for ids, name in ((split.train_ids, "train"), (split.test_ids, "test")):
        for i in ids:
            assert side.setdefault(photo_group(src.images[i]["file_name"]), name) == name
    assert split_by_photo(src, 0.3, seed=7) == split
    assert split_by_photo(src, 0.3, seed=8).test_ids != split.test_ids
    with pytest.raises(DataError, match="between 0 and 1"):
        split_by_photo(src, 1.0, seed=0)
    # Folds: disjoint test blocks of the same draw, fold 0 the plain split, copies still on one side.
    folds = [split_by_photo(src, 0.3, seed=7, fold=k) for k in range(3)]
    assert folds[0] == split
    tested = [i for f in folds for i in f.test_ids]
    assert len(tested) == len(set(tested)) == 27
    for f in folds:
        assert sorted(f.train_ids + f.test_ids) == sorted(src.images)
        test_photos = {photo_group(src.images[i]["file_name"]) for i in f.test_ids}
        assert not test_photos & {photo_group(src.images[i]["file_name"]) for i in f.train_ids}
    with pytest.raises(
        DataError,
        match=r"test fold 3 is out of range: 10 items with 3 held out make folds 0..2 \(items: photos",
    ):
        split_by_photo(src, 0.3, seed=7, fold=3)


def test_subset_points_at_the_original_photos_from_anywhere(tmp_path):
    from train.splits import write_subset

    src = load_coco(make_shapes_coco(tmp_path / "set", n_images=6, size=48, seed=1, side=(8, 20)))
    path = write_subset(src, [2, 5], tmp_path / "elsewhere" / "sub.json", note="test")
    sub = load_coco(path)  # checks that every image file resolves
    assert sorted(sub.images) == [2, 5]
    # file names stay inside the subset's folder: symlinks to the original photos
    assert all(sub.image_path(i).resolve() == src.image_path(i).resolve() for i in sub.images)
    assert {a["image_id"] for lst in sub.anns_by_image.values() for a in lst} <= {2, 5}
    assert sum(len(v) for v in sub.anns_by_image.values()) == len(src.anns_by_image[2]) + len(
        src.anns_by_image[5]
    )
    assert sub.categories == src.categories
    with pytest.raises(DataError, match="not in the set"):
        write_subset(src, [99], tmp_path / "bad.json")


def test_overlap_report_catches_shared_identical_and_reencoded_pictures(tmp_path):
    from train.splits import assert_no_leak, overlap_report, write_subset

    train = load_coco(make_shapes_coco(tmp_path / "train", n_images=6, size=48, seed=1))
    test_root = make_shapes_coco(tmp_path / "test", n_images=4, size=48, seed=2)
    clean = overlap_report(train, load_coco(test_root))
    assert not clean["leak"] and clean["near_duplicates_count"] == 0
    assert_no_leak(clean, "test")

    # a byte-identical copy and a resized, re-encoded copy of training photos slipped into the test set
    shutil.copy(train.image_path(1), test_root / "images" / "0000.png")
    Image.open(train.image_path(2)).resize((40, 40)).save(test_root / "images" / "0001.png")
    leaky = overlap_report(train, load_coco(test_root, check_files=False))
    assert leaky["leak"] and leaky["identical_files_count"] == 1 and leaky["near_duplicates_count"] >= 2
    with pytest.raises(DataError, match="leak into training"):
        assert_no_leak(leaky, "test")

    # the same file on both sides of a split of one set
    same = overlap_report(train, train, [1, 2, 3], [3, 4])
    assert same["same_files_count"] == 1 and same["leak"]
    sub = load_coco(write_subset(train, [4], tmp_path / "sub.json"))
    assert overlap_report(train, sub, [1, 2, 3], None)["leak"] is False


# ---- recipes, parameters, CLI --------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["retail", "industrial"])
def test_recipes_validate_and_the_plain_variant_only_changes_looks(task, tmp_path):
    from bench.sim2real.scales import TASKS
    from bench.sim2real.synthetic import PLAIN_LOOKS
    from flows.params import RenderParams

    config = str(REPO / TASKS[task].config)
    dr = RenderParams(config=config, overrides={}).load_config()  # the recipe file's own values
    plain = RenderParams(config=config, overrides=PLAIN_LOOKS).load_config()
    assert dr.materials.mode == "mix" and plain.materials.mode == "realistic"
    assert plain.lighting.count == (2, 2) and plain.lighting.kinds == {"area": 1.0}
    assert (
        plain.lighting.irradiance[1] - plain.lighting.irradiance[0]
        < dr.lighting.irradiance[1] - dr.lighting.irradiance[0]
    )
    # geometry, camera and annotation rules are shared: both sets show the same scenes at the same scale
    for section in ("layout", "camera", "objects", "distractors", "annotation", "image", "catalog"):
        assert getattr(plain, section) == getattr(dr, section), section
    assert dr.catalog.class_agnostic is None  # per-class scores need the catalog categories


def test_parameters_budget_and_variant_planning():
    from pydantic import ValidationError

    from bench.sim2real.scales import SCALES, Sim2RealParams

    p = Sim2RealParams(task="retail", variants=["e", "d"])
    assert [v.key for v in p.planned_variants()] == ["b", "d", "e"]  # (e) starts from (b)
    s = Sim2RealParams(task="industrial", steps=7, image_size=128, per_class=True).settings()
    assert (s.steps, s.image_size, s.per_class) == (7, 128, True)
    assert s.batch_size == SCALES[("industrial", "smoke")].batch_size
    assert Sim2RealParams(task="retail").out_dir().parts[-2:] == ("sim2real", "retail-smoke")
    for bad in (
        {"task": "garden"},
        {"task": "retail", "variants": ["x"]},
        {"task": "retail", "variants": []},
        {"task": "retail", "test_fraction": 1.5},
        {"task": "retail", "colour": "red"},
    ):
        with pytest.raises(ValidationError):
            Sim2RealParams(**bad)


def test_every_variant_gets_the_same_budget(tmp_path):
    from bench.sim2real.scales import Sim2RealParams
    from bench.sim2real.training import train_config
    from bench.sim2real.variants import VARIANTS

    def configs_for(params):
        return {
            v.key: train_config(
                v,
                params,
                params.settings(),
                run_dir=tmp_path / v.key,
                data=str(tmp_path / "data"),
                class_name="product",
                category_map=None,
                target_images=str(tmp_path / "real.json"),
                parent_checkpoint="b.pt" if v.init_from else None,
            ).model_dump()
            for v in VARIANTS
        }

    configs = configs_for(Sim2RealParams(task="retail", seed=5, train_overrides={"augment.strength": 0.3}))
    shared = ("batch_size", "seed", "optimizer", "lr", "warmup_steps", "val_fraction")
    for key in shared:
        assert len({c[key] for c in configs.values()}) == 1, key
    # (c) adapts (b)'s detector for half the steps, on top of (b)'s
    steps = {k: c["steps"] for k, c in configs.items()}
    assert steps == {**dict.fromkeys("abde", steps["a"]), "c": math.ceil(steps["a"] / 2)}
    assert len({json.dumps(c["model"] | {"weights": None}, sort_keys=True) for c in configs.values()}) == 1
    assert configs["a"]["seed"] == 5 and configs["a"]["augment"]["strength"] == 0.3
    assert not configs["a"]["augment"]["enabled"] and all(configs[k]["augment"]["enabled"] for k in "bcde")
    assert configs["c"]["dann"]["enabled"] and configs["c"]["target_images"].endswith("real.json")
    # (c) adapts (b)'s detector: the burn-in is (b), so the teacher labels from the first step, and its
    # unsure detections are don't-care boxes for SSD's hard-negative mining
    assert configs["c"]["self_training"]["enabled"] and configs["c"]["model"]["weights"] == "b.pt"
    assert configs["c"]["self_training"]["start"] == 0.0
    assert configs["c"]["self_training"]["ignore_below"] == 0.2
    assert all(configs[k]["self_training"]["ignore_below"] is None for k in "abde")
    assert not any(
        configs[k]["dann"]["enabled"] or configs[k]["self_training"]["enabled"] or configs[k]["target_images"]
        for k in "abde"
    )
    assert configs["e"]["model"]["weights"] == "b.pt" and configs["d"]["model"]["weights"] == "auto"
    # --train-set model.weights=... starts every variant but the fine-tuned one, which starts from its parent
    mine = configs_for(Sim2RealParams(task="retail", train_overrides={"model.weights": "mine.pt"}))
    assert {k: c["model"]["weights"] for k, c in mine.items()} == {
        **dict.fromkeys("abd", "mine.pt"),
        **dict.fromkeys("ce", "b.pt"),
    }
    # adaptation overrides reach only the variant that adapts: (b), trained first as (c)'s start, stays (b)
    fda = configs_for(
        Sim2RealParams(task="retail", train_overrides={"fda.enabled": True, "dann.weight": 0.3})
    )
    assert fda["c"]["fda"]["enabled"] and fda["c"]["dann"]["weight"] == 0.3
    assert (
        not any(fda[k]["fda"]["enabled"] for k in "abde")
        and fda["b"] == configs_for(Sim2RealParams(task="retail"))["b"]
    )
    # the don't-care band acts on SSD's hard-negative mining; an R-CNN (c) adapts without it
    rcnn = configs_for(
        Sim2RealParams(task="retail", train_overrides={"model.name": "maskrcnn_mobilenet_v3_large_fpn"})
    )
    assert rcnn["c"]["model"]["name"].startswith("maskrcnn")
    assert rcnn["c"]["self_training"]["ignore_below"] is None and rcnn["c"]["self_training"]["start"] == 0.0


def test_shared_classes_and_category_maps(tmp_path):
    from bench.sim2real.labels import shared_classes, write_category_map

    classes = shared_classes(["cereal", "Tomato Sauce", "toothpaste"], ["beans", "cereal", "tomato_sauce"])
    assert classes == ["cereal", "tomato_sauce"]
    path = write_category_map(["Tomato Sauce", "toothpaste", "cereal"], classes, tmp_path / "m.yaml")
    assert yaml.safe_load(Path(path).read_text()) == {
        "Tomato Sauce": "tomato_sauce",
        "cereal": "cereal",
        "toothpaste": None,
    }


def test_transfer_summary_ratios_and_gains():
    from bench.sim2real.summary import transfer_summary

    def rec(ap50, ap):
        return {"bbox": {"AP50": ap50, "AP": ap}}

    t = transfer_summary(
        {
            "a": rec(0.2, 0.1),
            "b": rec(0.3, 0.15),
            "c": rec(0.36, 0.2),
            "d": rec(0.4, 0.25),
            "e": rec(0.5, 0.3),
        }
    )
    assert t["AP50_relative_to_real_only"] == {"a": 0.5, "b": 0.75, "c": 0.9, "e": 1.25}
    assert t["adaptation_gain_AP50"] == pytest.approx(0.06) and t["finetune_gain_AP50"] == pytest.approx(0.1)
    assert t["randomization_gain_AP50"] == pytest.approx(0.1)
    assert transfer_summary({"b": rec(0.3, 0.1), "d": rec(0.0, 0.0)})["AP50_relative_to_real_only"] == {
        "b": None
    }


def test_cli_parses_and_documents_examples(capsys):
    from flows.cli.bench import add_bench_sim2real_parser

    parser = argparse.ArgumentParser(prog="simreal bench")
    add_bench_sim2real_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(
        [
            "sim2real",
            "--task",
            "industrial",
            "--variants",
            "b",
            "d",
            "--no-per-class",
            "--train-set",
            "augment.strength=0.3",
            "--render-set",
            "lighting.count=[1, 2]",
        ]
    )
    assert args.task == "industrial" and args.variants == ["b", "d"] and args.per_class is False
    assert dict(args.train_set) == {"augment.strength": 0.3} and dict(args.render_set) == {
        "lighting.count": [1, 2]
    }
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["sim2real", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "simreal bench sim2real --task retail" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["sim2real", "--task", "retail", "--train-set", "novalue"])


def test_missing_real_set_is_a_one_line_error(tmp_path, monkeypatch):
    from flows.sim2real import run_benchmark

    monkeypatch.setenv("SIMREAL_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(ConfigError, match="real_train: .*not found"):
        run_benchmark("retail", out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="sim2real steps"):
        run_benchmark("retail", out=str(tmp_path / "out"), steps=0)


# ---- the comparison report -----------------------------------------------------------------------------
def test_box_statistics_are_measured_in_relative_and_detector_pixels(tmp_path):
    from synth.coco import box_statistics

    root = tmp_path / "one"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (200, 100)).save(root / "images" / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "images/a.png", "width": 200, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 50], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    s = box_statistics(root, detector_size=320)
    assert s["boxes"] == 1 and s["images"] == 1
    assert s["relative_size"][50] == pytest.approx(0.5)  # sqrt(100*50 / (200*100))
    assert s["pixels_at_input"][50] == pytest.approx(160.0)  # 100 px * 320/200
    assert s["log2_aspect"][50] == pytest.approx(-1.0)


def _fake_evaluation(test: Path, out: Path, jitter: float, false_positives: int, seed: int) -> dict:
    """Real pycocotools metrics for predictions made from the ground truth: jittered boxes plus clutter.
    Writes OUT/metrics.json and OUT/predictions.json as train.evaluate does."""
    from train.data import build_label_map
    from train.evaluate import coco_metrics, remapped_ground_truth

    src = load_coco(test)
    ids = sorted(src.images)
    gt, _ = remapped_ground_truth(src, build_label_map(src.categories, class_agnostic="product"), ids)
    rng = np.random.default_rng(seed)
    preds = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        preds.append(
            {
                "image_id": a["image_id"],
                "category_id": 1,
                "score": float(rng.uniform(0.5, 1.0)),
                "bbox": [x + rng.normal(0, jitter * w), y + rng.normal(0, jitter * h), w, h],
            }
        )
    for _ in range(false_positives):
        preds.append(
            {
                "image_id": int(rng.choice(ids)),
                "category_id": 1,
                "score": float(rng.uniform(0, 0.9)),
                "bbox": [float(v) for v in rng.uniform(0, 30, 2)] + [10.0, 10.0],
            }
        )
    metrics = {
        "bbox": coco_metrics(gt, preds, "bbox"),
        "categories": gt["categories"],
        "images": len(ids),
        "gt_instances": len(gt["annotations"]),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "predictions.json").write_text(json.dumps(preds))
    return {**metrics, "out_dir": str(out)}


def _fake_variant(
    tmp_path: Path, key: str, test: Path, jitter: float, false_positives: int, seed: int
) -> dict:
    out = tmp_path / "variants" / key / "eval" / "real_test"
    bbox = _fake_evaluation(test, out, jitter, false_positives, seed)["bbox"]
    return {
        "key": key,
        "name": f"variant-{key}",
        "title": f"({key}) variant",
        "role": VARIANT_BY_KEY[key].role,
        "synthetic_only": key in "abc",
        "train_data": str(test),
        "train_images": 10,
        "train_objects": 20,
        "augment": key != "a",
        "dann": key == "c",
        "init_from": VARIANT_BY_KEY[key].init_from,
        "steps": 3,
        "batch_size": 2,
        "seed": 0,
        "training": "trained",
        "train_s": 1.0,
        "target_images": 4 if key == "c" else None,
        "metrics_file": str(out / "metrics.json"),
        "predictions_file": str(out / "predictions.json"),
        "bbox": {k: bbox[k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")},
        "per_class": {c: v for c, v in bbox["per_class"].items()},
    }


def test_comparison_report_is_self_contained_and_states_provenance(tmp_path):
    from bench.sim2real.summary import transfer_summary
    from train.compare import write_comparison
    from train.metrics import bootstrap_transfer

    sets = {
        "synthetic_plain": make_shapes_coco(tmp_path / "plain", n_images=6, size=64, seed=1),
        "synthetic_dr": make_shapes_coco(tmp_path / "dr", n_images=6, size=64, seed=2, style="dark"),
        "real_train": make_shapes_coco(tmp_path / "rtrain", n_images=6, size=64, seed=3, masks=False),
        "real_test": make_shapes_coco(tmp_path / "rtest", n_images=6, size=64, seed=4, masks=False),
    }
    for path in (tmp_path / "rtest").rglob("*.*g"):  # the real test photos come letterboxed
        pixels = np.array(Image.open(path).convert("RGB"))
        pixels[:, :8] = pixels[:, -8:] = 128
        Image.fromarray(pixels).save(path)
    variants = {
        k: _fake_variant(tmp_path, k, sets["real_test"], jitter, fps, seed)
        for seed, (k, jitter, fps) in enumerate(
            [("a", 0.4, 30), ("b", 0.3, 20), ("c", 0.25, 20), ("d", 0.05, 5), ("e", 0.02, 3)]
        )
    }
    preds = {k: json.loads(Path(r["predictions_file"]).read_text()) for k, r in variants.items()}
    uncertainty = bootstrap_transfer(sets["real_test"], preds, samples=200, seed=1)
    for k, r in variants.items():  # the bootstrap's own AP50 is COCOeval's
        assert uncertainty["AP50"][k]["estimate"] == pytest.approx(r["bbox"]["AP50"], abs=1e-3)
        lo, hi = uncertainty["AP50"][k]["ci95"]
        assert lo <= r["bbox"]["AP50"] + 1e-6 and r["bbox"]["AP50"] - 1e-6 <= hi
        r["bbox"]["AP50_ci95"] = [lo, hi]
    assert set(uncertainty["differences"]) == {
        "adaptation (c - b)",
        "randomization (b - a)",
        "fine-tuning (e - d)",
    }
    assert bootstrap_transfer(sets["real_test"], preds, samples=200, seed=1) == uncertainty  # seeded
    summary = {
        "task": "retail",
        "scale": "smoke",
        "class_name": "product",
        "variants": variants,
        "transfer": transfer_summary(variants),
        "uncertainty": uncertainty,
        "datasets": {
            k: {
                "path": str(v / "annotations.json"),
                "images": 6,
                "objects": 10,
                "config": "x.yaml",
                "look": k,
            }
            for k, v in sets.items()
        },
        "protocol": {
            "seed": 0,
            "weights_source": "random init (no weights file given)",
            "notes": ["same budget"],
            "same_budget": {
                "model": "ssdlite320_mobilenet_v3_large",
                "image_size": 128,
                "steps": 3,
                "batch_size": 2,
            },
            "split": {"how": "split by photo"},
            "leak_check": {"same_files_count": 0},
            "model_selection": "none",
        },
        "per_class": {"enabled": False, "classes": []},
        "provenance": {
            "git": {"commit": "abc123", "dirty": True},
            "device": {"device": "cpu", "cpu": "x86_64"},
            "packages": {"torch": "2"},
            "command": "pytest",
        },
        "catalog": {"root": "cat", "entries": 3, "sources": ["procedural"]},
        "timings": {"wall_s": 12.0},
    }
    path = tmp_path / "sim2real.json"
    path.write_text(json.dumps(summary))
    html = write_comparison(path).read_text()
    md = (tmp_path / "report.md").read_text()
    assert variants["e"]["bbox"]["AP50"] > variants["a"]["bbox"]["AP50"]  # the fake detectors differ
    for text in (html, md):
        assert "random initialisation" in text and "abc123" in text and "split by photo" in text
        assert "95 % intervals" in text and "not the spread between training runs" in text
        assert f"{variants['d']['bbox']['AP50']:.3f}" in text and "reference" in text
        for title in ("(a) variant", "(e) variant"):
            assert title in text
    assert "<img src='http" not in html and html.count("data:image/png;base64,") == 5
    figures = sorted(p.name for p in (tmp_path / "report_files").iterdir())
    assert figures == ["appearance.png", "box_sizes.png", "examples.png", "pr_curves.png", "scores.png"]
    for name in figures:
        assert f"report_files/{name}" in md
        with Image.open(tmp_path / "report_files" / name) as im:
            assert im.width > 300 and im.height > 150
    stats = json.loads((tmp_path / "data_statistics.json").read_text())
    assert set(stats) == set(sets) and stats["real_test"]["boxes"]["boxes"] > 0
    shares = {n: s["appearance"]["letterboxed_share"] for n, s in stats.items()}
    assert shares == {n: 1.0 if n == "real_test" else 0.0 for n in sets}
    assert "| letterboxed |" in md and "| 100 % |" in md
    assert "| 1 after (b) |" in md  # (c) and (e) train on top of (b)'s detector and time
    assert (
        stats["synthetic_dr"]["appearance"]["mean_brightness"]
        < stats["synthetic_plain"]["appearance"]["mean_brightness"]
    )
    with pytest.raises(ConfigError, match="not a benchmark summary"):
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        write_comparison(bad)


# ---- the protocol with plain runners (no Prefect, no rendering, no training) ----------------------------
def _plain_runners(tmp_path: Path):
    """A shapes set as the real photos, and render / train runners that record their jobs and write what the
    protocol reads (a shapes set; a config and a checkpoint) without rendering or training anything."""
    import torch

    classes = ("cereal", "soda")
    real = make_shapes_coco(tmp_path / "real", n_images=12, size=64, seed=9, masks=False, classes=classes)
    renders, trained = [], []

    def render(job):
        renders.append(job)
        make_shapes_coco(Path(job.out), n_images=job.n, size=64, seed=job.seed, classes=classes)
        return {
            "annotations": f"{job.out}/annotations.json",
            "out": job.out,
            "images_rendered": job.n,
            "wall_s": 0,
        }

    def train(cfg):
        run = Path(cfg.out)
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        torch.save({"step": cfg.steps}, run / "checkpoints" / "last.pt")
        trained.append(cfg)
        return str(run)

    return real, renders, trained, render, train


def _toy_params(tmp_path: Path, real: Path, **extra):
    from bench.sim2real.scales import Sim2RealParams

    return Sim2RealParams(
        task="retail",
        out=str(tmp_path / "bench"),
        real_train=str(real),
        catalog=str(tmp_path / "catalog"),
        images=3,
        steps=4,
        per_class=False,
        seed=3,
        device="cpu",
        **extra,
    )


def test_protocol_runs_in_process_with_plain_runners(tmp_path):

    from bench.sim2real.protocol import Runners, run_protocol
    from bench.sim2real.synthetic import PLAIN_LOOKS
    from bench.sim2real.variants import VARIANTS

    real, renders, trained, render, train = _plain_runners(tmp_path)

    def evaluate(run_dir, test_file, label, class_agnostic, category_map, device, batch_size):
        jitter = {"a": 0.3, "b": 0.2, "c": 0.2, "d": 0.05, "e": 0.02}[label[0]]
        return _fake_evaluation(Path(test_file), Path(run_dir) / "eval" / "real_test", jitter, 5, seed=1)

    params = _toy_params(tmp_path, real)
    summary = run_protocol(params, Runners(render=render, train=train, evaluate=evaluate))

    assert [(j.out.split("/")[-1], j.seed, j.n) for j in renders] == [("dr", 3, 3), ("plain", 3, 3)]
    assert all(renders[1].overrides[k] == v for k, v in PLAIN_LOOKS.items())
    assert [c.out.split("/")[-1] for c in trained] == [f"{v.key}-{v.name}" for v in VARIANTS]
    parent = str(Path(trained[1].out) / "checkpoints" / "last.pt")
    assert trained[2].model.weights == trained[4].model.weights == parent  # (c) and (e) start from (b)
    assert {(c.steps, c.seed, c.model.name) for c in trained} == {
        (4, 3, "ssdlite320_mobilenet_v3_large"),
        (2, 3, "ssdlite320_mobilenet_v3_large"),  # (c): half the steps on top of (b)'s
    }
    assert trained[2].steps == 2
    saved = json.loads((tmp_path / "bench" / "sim2real.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert {k: r["role"] for k, r in saved["variants"].items()} == {v.key: v.role for v in VARIANTS}
    assert saved["transfer"]["reference"] == "d" and saved["variants"]["e"]["bbox"]["AP50_ci95"]
    assert set(saved["datasets"]) == {"real_train", "real_test", "synthetic_dr", "synthetic_plain"}
    assert saved["datasets"]["real_test"]["images"] == len(saved["real_split"]["test_files"])
    assert (tmp_path / "bench" / "report.html").is_file()

    again = run_protocol(params, Runners(render=render, train=train, evaluate=evaluate))
    assert len(trained) == 5 and {r["training"] for r in again["variants"].values()} == {"reused"}


# ---- the whole flow at toy scale -----------------------------------------------------------------------
def _real_stand_in(tmp_path: Path) -> tuple[Path, str]:
    """Real Freiburg photos (a small subset) when ../shared is here, else a box-only shapes set."""
    if (FREIBURG / "annotations.json").is_file():
        from train.splits import write_subset

        src = load_coco(FREIBURG)
        return write_subset(src, sorted(src.images)[::25], tmp_path / "freiburg_small.json"), "freiburg"
    root = make_shapes_coco(
        tmp_path / "real",
        n_images=20,
        size=96,
        seed=9,
        masks=False,
        classes=("cereal", "soda"),
        image_format="jpg",
    )
    return root / "annotations.json", "stand-in"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_benchmark_end_to_end_at_toy_scale(tmp_path, monkeypatch):
    from randomize_helpers import RETAIL, make_catalog

    from bench.sim2real.variants import VARIANTS
    from flows.sim2real import run_benchmark

    monkeypatch.setenv("SIMREAL_SHARED", str(tmp_path / "no-shared"))  # only what the test passes is used
    real, kind = _real_stand_in(tmp_path)
    make_catalog(tmp_path / "catalog", RETAIL)
    out = tmp_path / "bench"
    kwargs = dict(
        real_train=str(real),
        catalog=str(tmp_path / "catalog"),
        images=4,
        render_size=64,
        steps=2,
        batch_size=2,
        image_size=96,
        per_class=True,
        workers=1,
        seed=3,
        device="cpu",
        train_overrides={"workers": 0, "threads": 2},
    )
    summary = run_benchmark("retail", "smoke", str(out), **kwargs)

    saved = json.loads((out / "sim2real.json").read_text())
    assert list(saved["variants"]) == [v.key for v in VARIANTS]
    assert [r["role"] for r in saved["variants"].values()] == [v.role for v in VARIANTS]
    for name in ("report.html", "report.md", "data_statistics.json", "report_files/examples.png"):
        assert (out / name).is_file(), name
    # one budget: same steps, batch, seed and model for every variant ((c) half the steps on top of (b)'s),
    # read back from each run's config
    configs = {
        k: yaml.safe_load((Path(r["run_dir"]) / "config.yaml").read_text())
        for k, r in saved["variants"].items()
    }
    assert {
        (
            c["steps"] * (2 if k == "c" else 1),
            c["batch_size"],
            c["seed"],
            c["model"]["name"],
            c["model"]["image_size"],
        )
        for k, c in configs.items()
    } == {(2, 2, 3, "ssdlite320_mobilenet_v3_large", 96)}
    assert configs["e"]["model"]["weights"] == str(
        Path(saved["variants"]["b"]["run_dir"]) / "checkpoints" / "last.pt"
    )
    # no test photo in any training set or DANN target
    test_files = set(saved["real_split"]["test_files"])
    assert test_files and set(saved["real_split"]["train_files"]).isdisjoint(test_files)
    for key, rec in saved["variants"].items():
        ds = json.loads((Path(rec["run_dir"]) / "dataset_summary.json").read_text())
        for role in ("train", "target"):
            if ds.get(role):
                src = load_coco(ds[role]["path"])
                used = {str(src.image_path(i).resolve()) for i in src.images}
                assert used.isdisjoint(test_files), (key, role)
        assert rec["test_images"] == len(test_files)
        assert rec["bbox"]["AP50"] is not None
    assert saved["protocol"]["leak_check"]["leak"] is False
    assert "random init" in saved["protocol"]["weights_source"]
    # retail categories shared by the tiny catalog and the real set give per-class models too
    if kind == "freiburg":
        assert len(saved["per_class"]["classes"]) >= 2 and set(saved["per_class"]["variants"]) == set("abcde")
    assert summary["report"]["html"] == str(out / "report.html")
    # every AP50 stands beside the blind floor fitted on the real train split, in numbers and words
    floor = saved["uncertainty"]["floor"]
    assert 0.0 <= floor["estimate"] <= 1.0 and floor["ci95"] and floor["prior_from"] == "the real train split"
    verdicts = {"above the floor", "below the floor", "not distinguishable from the floor"}
    assert all(r["floor_margin"]["verdict"] in verdicts for r in saved["variants"].values())
    reference_clears = saved["variants"]["d"]["floor_margin"]["verdict"] == "above the floor"
    assert saved["transfer"]["ratios_meaningful"] is reference_clears
    page = (out / "report.md").read_text()
    assert "blind floor (never looks at the pixels)" in page and "vs blind floor" in page
    assert ("of what the detector trained on the real photos reaches" in page) is reference_clears

    # a second run reuses the renders and the trained models and gives the same numbers
    again = run_benchmark("retail", "smoke", str(out), **kwargs)
    assert {r["training"] for r in again["variants"].values()} == {"reused"}
    assert {k: r["bbox"] for k, r in again["variants"].items()} == {
        k: r["bbox"] for k, r in saved["variants"].items()
    }
    with pytest.raises(ConfigError, match="other settings"):
        run_benchmark("retail", "smoke", str(out), **{**kwargs, "steps": 3, "variants": ["a"]})


def test_average_precision_matches_the_coco_101_point_rule():
    from train.metrics import average_precision

    tp = np.array([1.0, 0.0, 1.0])
    assert average_precision(tp, np.ones(3), 2) == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    assert average_precision(tp, np.array([0.0, 1.0, 1.0]), 1) == pytest.approx(
        0.5
    )  # first detection not drawn
    assert average_precision(np.zeros(2), np.ones(2), 3) == 0.0
    assert np.isnan(average_precision(tp, np.ones(3), 0))


def test_a_time_budget_becomes_one_measured_step_count_reused_on_rerun(tmp_path, monkeypatch):
    import train.bench
    from bench.sim2real.budget import resolve_budget
    from bench.sim2real.scales import SCALES, parse_params

    assert parse_params("retail", "cpu").settings().budget_min == 12.0  # the quoted scale is time-budgeted
    assert parse_params("retail", "cpu", steps=7).settings().budget_min is None  # explicit steps win
    s = SCALES[("retail", "cpu")].model_copy(update={"image_size": 64, "batch_size": 2, "budget_min": 0.05})
    measured, record = resolve_budget(s, tmp_path, "cpu")
    assert record["step_s"] > 0 and measured.steps == record["steps"] == max(1, int(3.0 / record["step_s"]))
    assert json.loads((tmp_path / "budget.json").read_text()) == record

    def measured_again(*args, **kwargs):
        raise AssertionError("the step time was measured again")

    monkeypatch.setattr(train.bench, "seconds_per_step", measured_again)
    again, same = resolve_budget(s, tmp_path, "cpu")
    assert same == record and again.steps == measured.steps  # a re-run keeps its step count
    with pytest.raises(AssertionError, match="measured again"):
        resolve_budget(s.model_copy(update={"budget_min": 0.1}), tmp_path, "cpu")
    assert resolve_budget(s.model_copy(update={"budget_min": None}), tmp_path, "cpu") == (
        s.model_copy(update={"budget_min": None}),
        None,
    )


def test_several_training_seeds_are_trained_scored_and_averaged(tmp_path):
    """--train-seeds 2: every variant trains once per seed on the same split and renders, (e) starts from (b)'s
    run of its own seed, and the headline AP50 is the runs' mean with an interval that resamples them."""

    from bench.sim2real.protocol import Runners, run_protocol

    real, renders, trained, render, train = _plain_runners(tmp_path)

    def evaluate(run_dir, test_file, label, class_agnostic, category_map, device, batch_size):
        seed = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())["seed"]
        jitter = {"b": 0.2, "d": 0.05, "e": 0.02}[label[0]] * (1 + 2 * (seed - 3))
        return _fake_evaluation(Path(test_file), Path(run_dir) / "eval" / "real_test", jitter, 5, seed=seed)

    params = _toy_params(tmp_path, real, train_seeds=2, variants=["d", "e"])
    summary = run_protocol(params, Runners(render=render, train=train, evaluate=evaluate))

    assert [j.seed for j in renders] == [3]  # one rendered set, whatever the training seeds
    assert [(Path(c.out).name, c.seed) for c in trained] == [
        ("b-synthetic-dr", 3),
        ("b-synthetic-dr-seed4", 4),
        ("d-real-only", 3),
        ("d-real-only-seed4", 4),
        ("e-dr-then-real", 3),
        ("e-dr-then-real-seed4", 4),
    ]
    assert trained[5].model.weights == str(Path(trained[1].out) / "checkpoints" / "last.pt")
    d = summary["variants"]["d"]
    runs = [x["bbox"]["AP50"] for x in d["seed_runs"]]
    assert [x["seed"] for x in d["seed_runs"]] == [3, 4] and runs[0] != runs[1]
    assert d["bbox"]["AP50"] == pytest.approx(sum(runs) / 2, abs=1e-4)
    boot = summary["uncertainty"]["AP50"]["d"]
    assert boot["runs"] == [pytest.approx(r, abs=0.02) for r in runs]  # our matching vs COCOeval's
    assert summary["protocol"]["training_seeds"] == [3, 4]
    assert "training runs resampled" in summary["uncertainty"]["method"]
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "AP50 per training seed" in report and "spread between the training seeds" in report

    again = run_protocol(params, Runners(render=render, train=train, evaluate=evaluate))
    assert len(trained) == 6 and {r["training"] for r in again["variants"].values()} == {"reused"}


def test_a_pretrained_detector_starts_every_variant_without_a_parent(tmp_path):
    """--pretrain: (a)-(d) start from `simreal pretrain`'s checkpoint, (e) still from (b)'s, and the report
    states the pretraining and its cost apart from the per-variant budget. Asked for but missing, the run
    stops before rendering anything."""
    from bench.sim2real.protocol import Runners, run_protocol

    real, renders, trained, render, train = _plain_runners(tmp_path)

    def evaluate(run_dir, test_file, label, class_agnostic, category_map, device, batch_size):
        return _fake_evaluation(Path(test_file), Path(run_dir) / "eval" / "real_test", 0.1, 5, seed=1)

    runners = Runners(render=render, train=train, evaluate=evaluate)
    with pytest.raises(ConfigError, match="pretrain"):
        run_protocol(_toy_params(tmp_path, real, pretrain=True), runners)
    assert not renders and not trained

    pre = str(tmp_path / "pretrained.pt")
    record = {
        "key": "0123456789abcdef",
        "checkpoint": pre,
        "reused": True,
        "render_s": 140.0,
        "train_s": 1360.0,
        "cost_s": 1500.0,
        "images": 1600,
        "steps": 1800,
        "image_size": 256,
        "recipe": "configs/pretrain.yaml",
    }
    params = _toy_params(tmp_path, real, pretrain=True, pretrained=record, variants=["a", "d", "e"])
    summary = run_protocol(params, runners)
    weights = {Path(c.out).name[0]: c.model.weights for c in trained}
    assert weights == {
        "a": pre,
        "b": pre,
        "d": pre,
        "e": str(Path(trained[1].out) / "checkpoints" / "last.pt"),
    }
    assert summary["protocol"]["pretraining"]["cost_s"] == 1500.0
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "simreal pretrain" in report and "0123456789abcdef" in report and "25.0 min once" in report
    assert "random initialisation" not in report


def test_a_finished_run_is_reused_across_new_default_settings_but_not_changed_ones(tmp_path):
    """A config key added since a run finished, at its default, leaves it the same run; a changed setting
    is another run, refused in that folder rather than silently reused."""
    import torch

    from bench.sim2real.scales import Sim2RealParams
    from bench.sim2real.training import train_config, train_or_reuse
    from bench.sim2real.variants import VARIANT_BY_KEY
    from synth.errors import ConfigError

    params = Sim2RealParams(task="retail")
    cfg = train_config(
        VARIANT_BY_KEY["b"],
        params,
        params.settings(),
        run_dir=tmp_path / "b",
        data=str(tmp_path / "data"),
        class_name="product",
        category_map=None,
        target_images=None,
        parent_checkpoint=None,
    )
    stored = cfg.model_dump(mode="json")
    del stored["self_training"]["ignore_below"]  # written before that setting existed
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    (tmp_path / "b" / "config.yaml").write_text(yaml.safe_dump(stored))
    torch.save({"step": cfg.steps}, tmp_path / "b" / "checkpoints" / "last.pt")

    def never(_cfg):
        raise AssertionError("trained again")

    assert train_or_reuse(cfg, never) == (str(tmp_path / "b"), "reused")
    with pytest.raises(ConfigError, match="already holds a training run with other settings"):
        train_or_reuse(cfg.model_copy(update={"lr": cfg.lr / 2}), never)
