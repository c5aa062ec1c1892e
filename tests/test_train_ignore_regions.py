"""train.ignore_regions: don't-care boxes are neither matched nor mined; without them SSD is torchvision's."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou
from train_fixtures import make_image_folder, make_shapes_coco, read_log, tiny_train_config

from train import engine
from train.config import ModelConfig, TrainConfig
from train.engine import train
from train.ignore_regions import IGNORE_LABEL, IgnoreRegionSSD
from train.models import build_model


@pytest.fixture(autouse=True)
def _empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # never the machine's real cache


def _ssd():
    torch.manual_seed(0)
    cfg = ModelConfig(name="ssdlite320_mobilenet_v3_large", image_size=96)
    return build_model(cfg, num_classes=1).model.train()


# One labelled box, one unsure (don't-care) box; anchors: each of them, one on most of the unsure one, seven far away.
LABELLED, UNSURE = [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 70.0, 70.0]
FAR = [[100.0 + 9 * k, 0.0, 108.0 + 9 * k, 8.0] for k in range(7)]
ANCHORS = torch.tensor([LABELLED, UNSURE, [50.0, 50.0, 68.0, 70.0], *FAR])


def _batch_losses(model, images: list[tuple[list, list]], loss=None):
    """Losses and |d loss / d class logits| per image and anchor for a batch of (boxes, labels), each image's
    head calling the unsure box an object."""
    torch.manual_seed(2)
    logits = torch.randn(len(images), len(ANCHORS), 2)
    logits[:, 1:3] = torch.tensor([-4.0, 4.0])  # certain object: the hardest negatives, if background
    logits.requires_grad_(True)
    head = {"cls_logits": logits, "bbox_regression": torch.randn(len(images), len(ANCHORS), 4)}
    targets, matched = [], []
    for boxes, labels in images:
        t = {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
        targets.append(t)
        if t["boxes"].numel():  # matched on every box, as SSD.forward does before compute_loss
            matched.append(model.proposal_matcher(box_iou(t["boxes"], ANCHORS)))
        else:
            matched.append(torch.full((len(ANCHORS),), -1, dtype=torch.int64))
    losses = (loss or model.compute_loss)(targets, head, [ANCHORS] * len(images), matched)
    (grad,) = torch.autograd.grad(sum(losses.values()), logits, allow_unused=True)
    grad = torch.zeros_like(logits) if grad is None else grad
    return {k: v.item() for k, v in losses.items()}, grad.abs().sum(2)


def _losses(model, boxes: list, labels: list, loss=None):
    losses, grad = _batch_losses(model, [(boxes, labels)], loss)
    return losses, grad[0]


def test_without_dont_care_boxes_the_loss_is_torchvisions():
    model = _ssd()
    ours, ours_grad = _losses(model, [LABELLED], [1])
    plain, plain_grad = _losses(model, [LABELLED], [1], loss=lambda *a: SSD.compute_loss(model, *a))
    assert ours == plain and torch.equal(ours_grad, plain_grad)
    # plain SSD mines the two anchors on the object-looking region first (3 negatives per positive)
    assert (plain_grad[1:3] > 0).all() and int((plain_grad[3:] > 0).sum()) == 1


def test_dont_care_anchors_are_neither_matched_nor_mined():
    model = _ssd()
    losses, grad = _losses(model, [LABELLED, UNSURE], [1, IGNORE_LABEL])
    assert grad[0] > 0  # the labelled box still trains
    assert grad[1] == 0 and grad[2] == 0  # the unsure box's anchors: no object target, no background push
    assert int((grad[3:] > 0).sum()) == 3  # the three negatives come from elsewhere
    # the same as if the unsure box's anchors did not exist: the regression only sees the labelled box
    alone, _ = _losses(model, [LABELLED], [1])
    assert losses["bbox_regression"] == alone["bbox_regression"]

    nothing, grad = _losses(model, [UNSURE], [IGNORE_LABEL])  # only unsure boxes: nothing to learn, no NaN
    assert nothing == {"bbox_regression": 0.0, "classification": 0.0} and not grad.any()


def test_ignore_band_is_checked_against_threshold_and_model(tmp_path):
    data = make_shapes_coco(tmp_path / "synthetic", n_images=4, size=64, seed=0)
    st = {"enabled": True, "threshold": 0.5, "ignore_below": 0.5}
    with pytest.raises(ValueError, match=r"ignore_below \(0.5\) must be below self_training.threshold"):
        TrainConfig(**tiny_train_config(data, tmp_path / "run", target_images=str(data), self_training=st))
    st["ignore_below"] = 0.2
    with pytest.raises(ValueError, match="ignore_below needs an SSD model"):
        TrainConfig(**tiny_train_config(data, tmp_path / "run", target_images=str(data), self_training=st))


def test_ssd_self_training_with_an_ignore_band_trains(tmp_path, monkeypatch):
    seen = []  # the labels of every batch the SSD loss is computed on
    real_loss = IgnoreRegionSSD.compute_loss

    def spy(self, targets, *args):
        seen.append(torch.cat([t["labels"] for t in targets]).tolist())
        return real_loss(self, targets, *args)

    monkeypatch.setattr(IgnoreRegionSSD, "compute_loss", spy)
    # An untrained SSD scores every box about 1/num_classes; the real teacher (its weights, EMA and
    # checkpoint) is kept, with detections of known scores: one label, one don't-care box, one dropped.
    detections = {
        "boxes": torch.tensor([[5.0, 5.0, 40.0, 40.0], [45.0, 10.0, 75.0, 50.0], [10.0, 50.0, 30.0, 70.0]]),
        "scores": torch.tensor([0.9, 0.3, 0.01]),
        "labels": torch.tensor([1, 1, 1]),
    }

    real_new_teacher = engine.new_teacher

    def scripted_teacher(detector, cfg):
        teacher = real_new_teacher(detector, cfg)
        teacher.model.forward = lambda images: [dict(detections) for _ in images]
        return teacher

    monkeypatch.setattr(engine, "new_teacher", scripted_teacher)
    data = make_shapes_coco(tmp_path / "synthetic", n_images=6, size=64, seed=0)
    photos = make_image_folder(tmp_path / "real_photos", n_images=4, size=80, seed=9)
    cfg = TrainConfig(
        **tiny_train_config(
            data,
            tmp_path / "run",
            steps=4,
            model={"name": "ssdlite320_mobilenet_v3_large", "image_size": 96},
            target_images=str(photos),
            self_training={"enabled": True, "start": 0.5, "threshold": 0.5, "ignore_below": 0.1, "ema": 0.5},
            augment={"enabled": True, "strength": 0.3, "ops": ["flip", "color"]},
        )
    )
    rows = read_log(train(cfg))
    assert [r["loss_pseudo"] for r in rows[:2]] == ["", ""]
    for r in rows[2:]:
        assert torch.isfinite(torch.tensor(float(r["loss_pseudo"])))
        assert float(r["pseudo_boxes"]) == 1.0  # the don't-care box is not counted
    # 2 source-only steps, then a source and a pseudo-labelled batch per step; only the latter has label 0
    assert len(seen) == 6 and not any(IGNORE_LABEL in labels for labels in seen[:3] + seen[4:5])
    assert IGNORE_LABEL in seen[3] + seen[5] and 1 in seen[3] + seen[5]
    assert len(seen[3]) <= 2 * cfg.batch_size  # the 0.01 box is neither label nor don't-care


def test_a_batch_mixes_images_with_and_without_dont_care_boxes():
    model = _ssd()
    batch = [([LABELLED, UNSURE], [1, IGNORE_LABEL]), ([LABELLED], [1]), ([], [])]
    _, grad = _batch_losses(model, batch)
    assert grad[0, 1] == 0 and grad[0, 2] == 0  # skipped where the box is unsure ...
    assert (grad[1, 1:3] > 0).all()  # ... and mined as usual in the image without one
    assert not grad[2].any()  # nothing labelled: no negatives either
