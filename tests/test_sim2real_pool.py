"""Scoring several benchmark runs together (bench.sim2real.pool): folds, seeds and recipe arms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_sim2real import _fake_evaluation, _plain_runners, _toy_params
from train_fixtures import make_shapes_coco

from synth.coco import load_coco
from synth.errors import ConfigError


def _predictions(test: Path, tmp: Path, jitter: float, seed: int) -> list[dict]:
    _fake_evaluation(test, tmp, jitter, 6, seed)
    return json.loads((tmp / "predictions.json").read_text())


def test_folds_are_weighted_by_objects_and_one_fold_is_the_plain_bootstrap(tmp_path):
    from train.metrics import TestFold, bootstrap_folds, bootstrap_transfer

    folds, alone = [], []
    for k, n in enumerate((5, 9)):
        test = make_shapes_coco(tmp_path / f"fold{k}", n_images=n, size=64, seed=k, masks=False)
        src = load_coco(test)
        runs = {
            "x": [_predictions(test, tmp_path / f"x{k}{s}", 0.3, s) for s in range(2)],
            "y": [_predictions(test, tmp_path / f"y{k}", 0.05, 7)],
        }
        folds.append(TestFold(src, sorted(src.images), runs))
        alone.append(bootstrap_transfer(src, runs, reference=None, samples=50, differences=[]))
    pooled = bootstrap_folds(folds, reference=None, samples=200, differences=[("y", "x", "y - x")])
    objects = [sum(len(f.source.anns_by_image[i]) for i in f.image_ids) for f in folds]
    assert [f["objects"] for f in pooled["folds"]] == objects
    for arm in ("x", "y"):
        per_fold = [a["AP50"][arm]["estimate"] for a in alone]
        assert pooled["AP50"][arm]["estimate"] == pytest.approx(
            np.dot(per_fold, objects) / sum(objects), abs=2e-4
        )
        lo, hi = pooled["AP50"][arm]["ci95"]
        assert lo <= pooled["AP50"][arm]["estimate"] <= hi
    assert pooled["folds"][0]["AP50"]["x"] == alone[0]["AP50"]["x"]["runs"]  # both seeds, fold by fold
    diff = pooled["differences"]["y - x"]
    assert diff["estimate"] == pytest.approx(
        pooled["AP50"]["y"]["estimate"] - pooled["AP50"]["x"]["estimate"]
    )
    assert "2 disjoint test folds (5 + 9)" in pooled["method"]
    one = bootstrap_folds(folds[:1], reference=None, samples=50, differences=[])
    assert one == alone[0] and "folds" not in one
    with pytest.raises(
        ValueError, match=r"test fold 1 holds variants \['x'\]; every fold needs \['x', 'y'\]"
    ):
        bootstrap_folds([folds[0], TestFold(folds[1].source, folds[1].image_ids, {"x": folds[1].runs["x"]})])


def _bench(tmp_path: Path, name: str, fold: int, variants, jitter: dict, **extra) -> str:
    """One benchmark run of the protocol on test fold ``fold`` with fake training and evaluation."""
    from bench.sim2real.protocol import Runners, run_protocol

    real, _, _, render, train = _plain_runners(tmp_path / "shared")

    def evaluate(run_dir, test_file, label, class_agnostic, category_map, device, batch_size):
        return _fake_evaluation(
            Path(test_file), Path(run_dir) / "eval" / "real_test", jitter[label[0]], 5, seed=fold
        )

    params = _toy_params(tmp_path, real).model_copy(
        update=dict(variants=list(variants), test_fold=fold, out=str(tmp_path / name), **extra)
    )
    run_protocol(params, Runners(render=render, train=train, evaluate=evaluate))
    return params.out


def test_pool_scores_disjoint_folds_and_recipe_arms_together(tmp_path):
    from bench.sim2real.pool import pool_runs

    jitter = {"b": 0.3, "c": 0.1}
    fda = {"train_overrides": {"fda.enabled": True}}
    runs = [_bench(tmp_path, f"f{k}", k, "bc", jitter) for k in (0, 1)]
    ab = [_bench(tmp_path, f"f{k}-fda", k, "c", jitter, **fda) for k in (0, 1)]
    for run in runs:  # the two folds test on different photos, drawn from one seeded permutation
        assert json.loads((Path(run) / "real" / "split.json").read_text())["test_fold"] == int(run[-1])
    tested = [
        set(json.loads((Path(r) / "sim2real.json").read_text())["real_split"]["test_files"]) for r in runs
    ]
    assert len(tested[0]) == len(tested[1]) == 4 and not tested[0] & tested[1]

    with pytest.raises(ConfigError, match=r"c \[fda.enabled=True\] has no run on the test photos"):
        pool_runs(runs + ab[:1], tmp_path / "pool")
    record = pool_runs(runs + ab, tmp_path / "pool", samples=200)

    # (c) starts from (b), so the FDA runs trained (b) again, which FDA does not reach: the same arm, the
    # same (fake, deterministic) predictions, counted once.
    assert all("b" in json.loads((Path(r) / "sim2real.json").read_text())["variants"] for r in ab)
    assert list(record["arms"]) == ["b", "c", "c [fda.enabled=True]"]
    assert [f["images"] for f in record["folds"]] == [4, 4]
    for arm, rec in record["arms"].items():
        summaries = [
            json.loads((Path(r) / "sim2real.json").read_text()) for r in (ab if "fda" in arm else runs)
        ]
        per_fold = [s["variants"][arm[0]]["bbox"]["AP50"] for s in summaries]
        objects = [f["objects"] for f in record["folds"]]
        assert rec["AP50"] == pytest.approx(np.dot(per_fold, objects) / sum(objects), abs=2e-3)
        assert rec["seeds_per_fold"] == [[3], [3]] and rec["floor_margin"]["verdict"]
    # c with and without FDA made the same (fake) predictions: the paired difference is exactly 0.
    same = record["differences"]["c [fda.enabled=True] - c"]
    assert same == {"estimate": 0.0, "ci95": [0.0, 0.0]}
    assert record["differences"]["c - b"]["estimate"] > 0
    saved = json.loads((tmp_path / "pool" / "pool.json").read_text())
    assert saved["report"].endswith("report.html") and (tmp_path / "pool" / "report_files").is_dir()
    text = (tmp_path / "pool" / "report.md").read_text()
    assert "not distinguishable: the interval includes 0" in text and "minus the floor" in text

    # One run alone, with the benchmark's own bootstrap seed, gives exactly the benchmark's own intervals.
    alone = pool_runs(runs[:1], tmp_path / "alone", seed=3)
    own = json.loads((Path(runs[0]) / "sim2real.json").read_text())["uncertainty"]
    assert {k: [a["AP50"], a["AP50_ci95"]] for k, a in alone["arms"].items()} == {
        k: [v["estimate"], v["ci95"]] for k, v in own["AP50"].items()
    }
    assert [alone["floor"]["estimate"], alone["floor"]["ci95"]] == [
        own["floor"]["estimate"],
        own["floor"]["ci95"],
    ]

    only_c = pool_runs(runs + ab, tmp_path / "only-c", variants=["c"], samples=200)
    assert list(only_c["arms"]) == ["c", "c [fda.enabled=True]"] and list(only_c["differences"]) == [
        "c [fda.enabled=True] - c"
    ]
    # Render overrides name the arms that learn from the renders; real-only is one arm either way.
    bars = {"render_overrides": {"letterbox.probability": 0.55}}
    boxed = [_bench(tmp_path, f"f{k}-bars", k, "bd", {**jitter, "d": 0.05}, **bars) for k in (0, 1)]
    with_bars = pool_runs(runs + boxed, tmp_path / "bars", variants=["b", "d"], samples=100)
    assert list(with_bars["arms"]) == ["b", "b [render letterbox.probability=0.55]", "d"]
    assert with_bars["arms"]["d"]["recipe"] == ""
    with pytest.raises(ConfigError, match=r"none of \['a'\] was trained"):
        pool_runs(runs, tmp_path / "pool2", variants=["a"])

    with pytest.raises(ConfigError, match="pool each run once"):
        pool_runs(runs + [_bench(tmp_path, "f0-again", 0, "b", {"b": 0.2})], tmp_path / "pool2")
    with pytest.raises(ConfigError, match="steps is 5 here but 4"):
        pool_runs(runs + [_bench(tmp_path, "f2-long", 2, "bc", jitter, steps=5)], tmp_path / "pool2")
    with pytest.raises(ConfigError, match="overlap"):
        other_draw = _bench(tmp_path, "seed4", 0, "bc", jitter, seed=4)
        pool_runs(runs + [other_draw], tmp_path / "pool2")
    with pytest.raises(ConfigError, match="no sim2real.json here"):
        pool_runs([tmp_path], tmp_path / "pool2")

    # A run folder moved elsewhere still pools (its files are found inside it); a path outside it is refused.
    moved = tmp_path / "moved" / "f1"
    shutil.copytree(runs[1], moved, symlinks=True)
    shutil.rmtree(runs[1])
    assert (
        pool_runs([runs[0], moved], tmp_path / "pool3", samples=200)["arms"]["c"]["AP50"]
        == record["arms"]["c"]["AP50"]
    )
    summary = json.loads((moved / "sim2real.json").read_text())
    summary["variants"]["b"]["seed_runs"][0]["predictions_file"] = "/etc/passwd"
    (moved / "sim2real.json").write_text(json.dumps(summary))
    with pytest.raises(ConfigError, match="/etc/passwd is outside the run's folder"):
        pool_runs([runs[0], moved], tmp_path / "pool3")


def test_pool_gives_a_share_of_real_only_only_where_real_only_clears_the_floor(tmp_path):
    from bench.sim2real.pool import pool_runs

    runs = [_bench(tmp_path, f"f{k}", k, "bcd", {"b": 0.3, "c": 0.1, "d": 0.05}) for k in (0, 1)]
    record = pool_runs(runs, tmp_path / "pool", samples=200)
    share = record["share_of_real_only"]
    assert share["shown"] and share["reference"] == "d" and list(share["arms"]) == ["b", "c"]
    arms = record["arms"]
    for a in ("b", "c"):
        assert share["arms"][a]["estimate"] == pytest.approx(arms[a]["AP50"] / arms["d"]["AP50"], abs=1e-3)
        lo, hi = share["arms"][a]["ci95"]
        assert lo <= share["arms"][a]["estimate"] <= hi
    text = (tmp_path / "pool" / "report.md").read_text()
    assert "share of d [95 %]" in text and "Share of real-only" in text and "| reference |" in text

    # The same arms, but a real-only model that is no better than the blind floor: no share is given.
    blind = [_bench(tmp_path, f"g{k}", k, "bcd", {"b": 0.3, "c": 0.1, "d": 5.0}) for k in (0, 1)]
    record = pool_runs(blind, tmp_path / "blind", samples=200)
    assert record["arms"]["d"]["floor_margin"]["verdict"] != "above the floor"
    share = record["share_of_real_only"]
    assert not share["shown"] and "arms" not in share and share["why"].startswith("real-only (d) is ")
    assert (
        "No share of real-only is given: real-only (d) is" in (tmp_path / "blind" / "report.md").read_text()
    )

    without = pool_runs(runs, tmp_path / "no-d", variants=["b", "c"], samples=100)["share_of_real_only"]
    assert without == {"reference": None, "shown": False, "why": "no real-only (d) arm among these runs"}


def test_pool_command_prints_every_arm_and_difference(tmp_path, capsys):
    from flows.cli import main

    runs = [_bench(tmp_path, f"f{k}", k, "bc", {"b": 0.3, "c": 0.1}) for k in (0, 1)]
    assert main(["bench", "pool", *runs, "--out", str(tmp_path / "pool"), "--samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "over 2 test fold(s), 8 photos" in out and "c - b" in out and "report:" in out
    assert "no share of real-only: no real-only (d) arm among these runs" in out
    assert main(["bench", "pool", str(tmp_path / "nothing"), "--out", str(tmp_path / "p2")]) != 0
    assert "no sim2real.json here" in capsys.readouterr().err


def test_an_impossible_test_fold_is_one_line_before_anything_runs(tmp_path, capsys):
    from flows.cli import main

    real = make_shapes_coco(tmp_path / "real", n_images=10, size=48, seed=1, masks=False)
    test = make_shapes_coco(tmp_path / "test", n_images=4, size=48, seed=2, masks=False)
    common = ["bench", "sim2real", "--task", "retail", "--variants", "d", "--out", str(tmp_path / "out")]
    assert main([*common, "--real-train", str(real), "--real-test", str(test), "--test-fold", "1"]) != 0
    assert "--test-fold: a test fold holds out part of the real train set" in capsys.readouterr().err
    assert main([*common, "--real-train", str(real), "--test-fold", "3"]) != 0
    err = capsys.readouterr().err
    assert "test fold 3 is out of range: 10 items with 3 held out make folds 0..2" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
