"""Extending a trained detector with new classes (train.heads, train.replay, train.extend_data,
train.extend): enlarged heads keep the old classes' outputs, batches mix replayed data in the asked share,
categories are united by name with their ids kept, and an end-to-end extension of a tiny trained Mask
R-CNN predicts old and new classes and reports AP before and after."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_fixtures import CLASSES, make_shapes_coco, tiny_rcnn_model, tiny_train_config

from synth.coco import CocoSource, load_coco
from synth.errors import ConfigError
from train.config import ModelConfig, TrainConfig
from train.data import build_label_map, decode_rgb
from train.engine import train
from train.evaluate import load_checkpoint, model_from_checkpoint
from train.extend import extend_detector
from train.extend_data import union_classes
from train.heads import NEW_CLASS_PRIOR, ClassLayer, class_layers, enlarge_state, grow_rows
from train.models import build_model
from train.replay import MixedBatchSampler

OLD, NEW = 2, 4  # foreground classes before and after


def _pair(model_cfg: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A randomly initialised model with OLD classes and the same model enlarged to NEW classes."""
    cfg = ModelConfig(**model_cfg)
    torch.manual_seed(0)
    base = build_model(cfg, OLD).model.eval()
    # random running statistics, so the check covers what a trained model carries
    for m in base.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    big = build_model(cfg, NEW).model.eval()
    big.load_state_dict(enlarge_state(base.state_dict(), big, OLD, NEW))
    return base, big


def _capture(model: torch.nn.Module, module: torch.nn.Module, image: torch.Tensor):
    seen = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        detections = model([image])[0]
    handle.remove()
    return seen[0], detections


def _check_new_scores_and_detections(old_probs, new_probs, detections) -> None:
    # a new class scores at most NEW_CLASS_PRIOR, every old score shrinks by at most (1 + prior) per class
    assert new_probs[..., OLD + 1 :].max() <= NEW_CLASS_PRIOR
    shrink = new_probs[..., : OLD + 1] / old_probs
    assert shrink.min() >= 1 / (1 + (NEW - OLD) * NEW_CLASS_PRIOR) - 1e-5 and shrink.max() <= 1 + 1e-5
    assert all(lab <= OLD for lab in detections["labels"].tolist())  # nothing of a new class yet


def test_enlarged_ssdlite_keeps_old_class_outputs():
    base, big = _pair({"name": "ssdlite320_mobilenet_v3_large", "image_size": 96, "use_hub_cache": False})
    image = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(1))
    before, _ = _capture(base, base.head, image)
    after, detections = _capture(big, big.head, image)
    assert after["cls_logits"].shape[-1] == NEW + 1
    torch.testing.assert_close(after["cls_logits"][..., : OLD + 1], before["cls_logits"])
    torch.testing.assert_close(after["bbox_regression"], before["bbox_regression"])
    _check_new_scores_and_detections(
        before["cls_logits"].softmax(-1), after["cls_logits"].softmax(-1), detections
    )


def test_enlarged_mask_rcnn_keeps_old_class_boxes_scores_and_masks():
    base, big = _pair(tiny_rcnn_model(64))
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    (b_logits, b_deltas), _ = _capture(base, base.roi_heads.box_predictor, image)
    (a_logits, a_deltas), detections = _capture(big, big.roi_heads.box_predictor, image)
    torch.testing.assert_close(a_logits[:, : OLD + 1], b_logits)
    torch.testing.assert_close(a_deltas[:, : 4 * (OLD + 1)], b_deltas)
    # new classes' boxes start as the old foreground classes' mean
    fg = b_deltas.view(len(b_deltas), OLD + 1, 4)[:, 1:].mean(1)
    torch.testing.assert_close(a_deltas.view(len(a_deltas), NEW + 1, 4)[:, -1], fg)
    _check_new_scores_and_detections(b_logits.softmax(-1), a_logits.softmax(-1), detections)
    # the mask head on the same RoI features
    feats = torch.rand(3, 64, 14, 14, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        b_masks, a_masks = base.roi_heads.mask_predictor(feats), big.roi_heads.mask_predictor(feats)
    assert a_masks.shape[1] == NEW + 1
    torch.testing.assert_close(a_masks[:, : OLD + 1], b_masks)


def test_a_model_without_class_head_is_refused():
    cfg = ModelConfig(**tiny_rcnn_model(64))
    small, big = build_model(cfg, OLD).model, build_model(cfg, NEW).model
    state = {k: v for k, v in small.state_dict().items() if "box_predictor" not in k}
    with pytest.raises(ConfigError, match="no class head to enlarge"):
        enlarge_state(state, big, OLD, NEW)
    assert class_layers(torch.nn.Conv2d(3, 3, 1), 3) == []


@pytest.mark.parametrize(("fraction", "batch"), [(0.5, 4), (0.25, 4), (0.5, 1), (0.3, 3)])
def test_mixed_batches_replay_the_asked_share(fraction, batch):
    n_new, n_old, steps = 5, 7, 40
    sampler = MixedBatchSampler(n_new + n_old, batch, steps, n_new=n_new, fraction=fraction, seed=3)
    batches = list(sampler)
    assert len(batches) == steps and all(len(b) == batch for b in batches)
    replayed = [sum(i >= n_new for i in b) for b in batches]
    assert all(math.floor(fraction * batch) <= r <= math.ceil(fraction * batch) for r in replayed)
    assert abs(sum(replayed) - fraction * batch * steps) < 1
    # every image of each part is used, and resuming at a step continues with the same batches
    assert {i for b in batches for i in b} == set(range(n_new + n_old))
    resumed = MixedBatchSampler(
        n_new + n_old, batch, steps, n_new=n_new, fraction=fraction, seed=3, start_step=17
    )
    assert list(resumed) == batches[17:]


def test_two_processes_together_take_the_one_process_batches():
    one = list(MixedBatchSampler(12, 4, 6, n_new=5, fraction=0.5, seed=1))
    ranks = [
        list(MixedBatchSampler(12, 2, 6, n_new=5, fraction=0.5, seed=1, world_size=2, rank=r))
        for r in range(2)
    ]
    assert [sorted(a + b) for a, b in zip(*ranks, strict=True)] == [sorted(b) for b in one]


# ---- classes of the extended model -----------------------------------------------------------------
def _set(root: Path, classes: tuple[str, ...], n: int = 2, seed: int = 0) -> CocoSource:
    return load_coco(make_shapes_coco(root, n_images=n, size=48, seed=seed, classes=classes, side=(10, 20)))


def test_new_categories_are_appended_and_old_ones_keep_their_labels(tmp_path):
    replay = _set(tmp_path / "old", ("box", "disc"))
    new = _set(tmp_path / "new", ("box", "disc", "wedge"))
    union = union_classes(
        ["box", "disc"], new, replay, build_label_map(replay.categories, class_names=["box", "disc"])
    )
    assert union.class_names == ("box", "disc", "wedge") and union.new == ("wedge",)
    assert union.labels() == {"box": 1, "disc": 2, "wedge": 3}
    # a class-agnostic base: the replay set's categories are its one class, the rest is new
    agnostic = union_classes(
        ["product"], new, replay, build_label_map(replay.categories, class_agnostic="product")
    )
    assert agnostic.class_names == ("product", "wedge") and agnostic.label("Disc") == 1


def test_categories_match_by_name_and_one_name_under_two_ids_is_a_one_line_error(tmp_path):
    replay = _set(tmp_path / "old", ("box", "disc"))
    lm = build_label_map(replay.categories, class_names=["box", "disc"])
    # a rendered set numbers sorted names from 1: old categories may come back under other ids
    shifted = _set(tmp_path / "new", ("cone", "disc", "box"))
    union = union_classes(["box", "disc"], shifted, replay, lm)
    assert union.class_names == ("box", "disc", "cone") and union.label("box") == 1
    doubled = _set(tmp_path / "doubled", ("box", "Box", "wedge"))
    with pytest.raises(ConfigError, match="categories 1 \\('box'\\) and 2 \\('Box'\\) have one name") as e:
        union_classes(["box", "disc"], doubled, replay, lm)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="no new category"):
        union_classes(["box", "disc"], replay, replay, lm)


def test_missing_checkpoint_is_a_one_line_cli_error(tmp_path, capsys):
    from flows.cli import main

    new = make_shapes_coco(tmp_path / "new", n_images=2, size=48)
    rc = main(["extend", str(tmp_path / "missing.pt"), "--new", str(new), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.endswith("missing.pt: checkpoint not found") and "\n" not in err


# ---- end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A tiny Mask R-CNN trained a few steps on box + disc, holding a quarter of its images out."""
    root = tmp_path_factory.mktemp("base")
    old = make_shapes_coco(root / "old", n_images=8, size=64, seed=0, classes=("box", "disc"), side=(14, 30))
    return train(TrainConfig(**tiny_train_config(old, root / "run", steps=4, val_fraction=0.25)))


@pytest.mark.slow
def test_extend_a_trained_mask_rcnn_with_a_new_class(tmp_path, base_run):
    new = make_shapes_coco(tmp_path / "new", n_images=8, size=64, seed=1, classes=CLASSES, side=(14, 30))
    base_ckpt = base_run / "checkpoints" / "last.pt"
    r = extend_detector(base_ckpt, new, None, tmp_path / "ext", steps=4, batch_size=2, device="cpu")

    assert r["classes"] == {"old": ["box", "disc"], "new": ["wedge"]}
    assert r["replay"]["fraction"] == 0.5 and r["replay"]["images"] == 6  # the base run's training split
    for key in ("old_class_ap_before", "old_class_ap_after", "new_class_ap"):
        assert set(r[key]) == {"AP", "AP50"} and all(0.0 <= v <= 1.0 for v in r[key].values())
    assert set(r["per_set"]) == {"new", "replay"}
    assert set(r["per_set"]["replay"]["before"]) <= {"box", "disc"}
    assert "wedge" in r["per_set"]["new"]["after"] and "wedge" not in r["per_set"]["new"]["before"]

    # the extended checkpoint: old labels kept, the new one appended, its rows trained
    ck = load_checkpoint(r["checkpoint"])
    assert ck["class_names"] == ["box", "disc", "wedge"]
    key = "roi_heads.box_predictor.cls_score.weight"
    start = grow_rows(
        load_checkpoint(base_ckpt)["model"][key], ClassLayer(key, 1, 1, True), 3, 4, is_bias=False
    )
    assert not torch.equal(ck["model"][key][3], start[3])

    # it predicts old and new class ids (every score shown: a few CPU steps teach a random-init model little)
    model, _, _ = model_from_checkpoint(ck)
    model.roi_heads.score_thresh = 0.0
    src = load_coco(new)
    with torch.no_grad():
        labels = {
            lab
            for i in sorted(src.images)
            for lab in model([decode_rgb(src.image_path(i)).float() / 255])[0]["labels"].tolist()
        }
    assert {1, 2, 3} <= labels

    page = Path(r["report"]).read_text()
    md = (tmp_path / "ext" / "report.md").read_text()
    assert "extended with wedge" in page and "AP before" in page and "AP after" in md
    assert "| replay | box | old |" in md and "| new | wedge | new |" in md
    assert (tmp_path / "ext" / "train" / "report.html").is_file()
    assert json.loads((tmp_path / "ext" / "extend.json").read_text())["checkpoint"] == r["checkpoint"]
    with pytest.raises(ConfigError, match="already holds an extended model"):
        extend_detector(base_ckpt, new, None, tmp_path / "ext", steps=4, batch_size=2, device="cpu")
