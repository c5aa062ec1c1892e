"""train.self_training: the mean teacher's average and labels, and self-training runs (with DANN, resumed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from train_fixtures import make_image_folder, make_shapes_coco, read_log, tiny_train_config

from train.config import TrainConfig
from train.data import UnlabelledImages
from train.engine import DistInfo, TrainingError, build_loaders, first_target_step, teacher_start_step, train
from train.evaluate import load_checkpoint
from train.ignore_regions import IGNORE_LABEL
from train.self_training import MeanTeacher, pseudo_box_count


class _FixedDetector(nn.Module):
    """Returns the same detections for every image, whatever the weights (a stand-in for a detector)."""

    def __init__(self, detections: dict):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))
        self.register_buffer("running", torch.zeros(3))
        self.register_buffer("count", torch.tensor(0))
        self.detections = detections

    def forward(self, images):
        return [dict(self.detections) for _ in images]


def _detections(with_masks: bool = False) -> dict:
    out = {
        "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.5, 20.0], [2.0, 3.0, 30.0, 40.0]]),
        "scores": torch.tensor([0.9, 0.8, 0.3]),
        "labels": torch.tensor([2, 1, 1]),
    }
    if with_masks:
        out["masks"] = torch.stack([torch.full((1, 4, 4), v) for v in (0.7, 0.9, 0.6)])
        out["masks"][0, 0, 0, 0] = 0.2
    return out


def test_teacher_is_an_exponential_moving_average_of_weights_and_statistics():
    student = _FixedDetector(_detections())
    teacher = MeanTeacher(student, ema=0.9, threshold=0.5, max_per_image=10)
    assert not any(p.requires_grad for p in teacher.model.parameters())
    with torch.no_grad():
        student.weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        student.running.fill_(7.0)
        student.count.fill_(12)
    teacher.update(student)
    assert torch.allclose(teacher.model.weight, torch.tensor([0.1, 0.2, -0.1]))
    teacher.update(student)
    assert torch.allclose(teacher.model.weight, torch.tensor([0.19, 0.38, -0.19]))  # 0.9 * 0.1 + 0.1 * 1
    assert torch.allclose(teacher.model.running, torch.full((3,), 1.33))  # statistics averaged alike
    assert torch.equal(teacher.model.count, student.count)  # integer buffers (batch counters) copied
    assert torch.equal(student.weight, torch.tensor([1.0, 2.0, -1.0]))  # the student is left alone

    copy = MeanTeacher(_FixedDetector(_detections()), ema=0.9, threshold=0.5, max_per_image=10)
    copy.load_state_dict(teacher.state_dict())
    assert torch.equal(copy.model.weight, teacher.model.weight)


def test_pseudo_labels_keep_confident_boxes_with_area_and_binarise_masks():
    teacher = MeanTeacher(
        _FixedDetector(_detections(with_masks=True)), ema=0.9, threshold=0.5, max_per_image=10
    )
    labels = teacher.pseudo_labels(torch.zeros(2, 3, 8, 8))
    assert len(labels) == 2
    t = labels[0]
    # 0.3 is under the threshold; the 0.5 px wide box has no area to learn from
    assert t["boxes"].tolist() == [[0.0, 0.0, 10.0, 10.0]]
    assert t["labels"].tolist() == [2] and t["labels"].dtype == torch.int64
    assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (1, 4, 4)
    assert t["masks"].sum().item() == 15  # one pixel under 0.5
    assert pseudo_box_count(labels).item() == 1.0

    strict = MeanTeacher(_FixedDetector(_detections()), ema=0.9, threshold=0.95, max_per_image=10)
    empty = strict.pseudo_labels(torch.zeros(1, 3, 8, 8))[0]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    capped = MeanTeacher(_FixedDetector(_detections()), ema=0.9, threshold=0.1, max_per_image=1)
    assert capped.pseudo_labels(torch.zeros(1, 3, 8, 8))[0]["boxes"].shape == (1, 4)


def test_unsure_detections_become_dont_care_boxes_with_an_ignore_band():
    banded = MeanTeacher(
        _FixedDetector(_detections()), ema=0.9, threshold=0.5, max_per_image=10, ignore_below=0.2
    )
    labels = banded.pseudo_labels(torch.zeros(1, 3, 8, 8))
    assert labels[0]["boxes"].tolist() == [[0.0, 0.0, 10.0, 10.0], [2.0, 3.0, 30.0, 40.0]]
    assert labels[0]["labels"].tolist() == [2, IGNORE_LABEL]  # 0.3 lies in [0.2, 0.5)
    assert pseudo_box_count(labels).item() == 1.0  # don't-care boxes are not labels
    above = MeanTeacher(
        _FixedDetector(_detections()), ema=0.9, threshold=0.5, max_per_image=10, ignore_below=0.35
    )
    assert above.pseudo_labels(torch.zeros(1, 3, 8, 8))[0]["labels"].tolist() == [2]


@pytest.mark.parametrize("dann", [True, False])
def test_self_training_starts_after_burn_in_and_resumes_with_its_teacher(tmp_path, dann):
    data = make_shapes_coco(tmp_path / "synthetic", n_images=8, size=64, seed=0)
    photos = make_image_folder(tmp_path / "real_photos", n_images=4, size=80, seed=9)
    settings = tiny_train_config(
        data,
        tmp_path / "run",
        steps=4,
        checkpoint_every=2,
        target_images=str(photos),
        dann={"enabled": dann, "instance_level": dann},
        # a threshold this low gives an untrained teacher's detections too: the pseudo-label path runs
        self_training={"enabled": True, "start": 0.5, "threshold": 0.01, "ema": 0.5},
        augment={"enabled": True, "strength": 0.3, "ops": ["flip", "color"]},
    )
    cfg = TrainConfig(**settings)
    assert teacher_start_step(cfg) == 2
    run = train(cfg)
    rows = read_log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [r["loss_pseudo"] for r in rows[:2]] == ["", ""]  # burn-in: the labelled data alone
    for r in rows[2:]:
        assert float(r["loss_pseudo"]) > 0 and float(r["pseudo_boxes"]) > 0
        assert (r["domain_acc"] != "") == dann
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", fields=("model", "step"))
    teacher = ckpt["teacher"]
    assert set(teacher) == set(ckpt["model"])
    assert any(
        not torch.equal(teacher[k], ckpt["model"][k]) for k in teacher if teacher[k].is_floating_point()
    )

    resumed = train(TrainConfig(**{**settings, "steps": 6, "resume": True}))
    assert [int(r["step"]) for r in read_log(resumed)] == [1, 2, 3, 4, 5, 6]
    after = load_checkpoint(resumed / "checkpoints" / "last.pt", fields=("model", "step"))["teacher"]
    assert any(not torch.equal(after[k], teacher[k]) for k in after if after[k].is_floating_point())
    changed = {**settings["self_training"], "threshold": 0.2}
    with pytest.raises(TrainingError, match="self-training settings differ"):
        train(TrainConfig(**{**settings, "steps": 8, "resume": True, "self_training": changed}))


def test_self_training_alone_draws_target_photos_only_once_its_teacher_exists(tmp_path):
    """Without DANN the burn-in has no use for target photos; the steps after it get the same photos as with
    DANN (the order is a function of seed and step), so a resumed run continues exactly either way."""
    data = make_shapes_coco(tmp_path / "synthetic", n_images=4, size=64, seed=0)
    photos = make_image_folder(tmp_path / "real_photos", n_images=5, size=48, seed=3)
    dinfo = DistInfo(0, 1, 0, torch.device("cpu"))

    def target_stream(dann: bool, start_step: int = 0) -> tuple[TrainConfig, list[torch.Tensor]]:
        cfg = TrainConfig(
            **tiny_train_config(
                data,
                tmp_path / "run",
                steps=6,
                batch_size=2,
                workers=0,
                target_images=str(photos),
                dann={"enabled": dann},
                self_training={"enabled": True, "start": 0.5},
            )
        )
        labelled = list(range(4))  # only its length matters to the labelled stream, which is not read here
        _, targets = build_loaders(cfg, labelled, UnlabelledImages(photos, 32), dinfo, start_step)
        return cfg, list(targets)

    cfg, alone = target_stream(dann=False)
    _, with_dann = target_stream(dann=True)
    assert first_target_step(cfg) == teacher_start_step(cfg) == 3
    assert len(with_dann) == 6 and len(alone) == 3
    assert all(torch.equal(a, b) for a, b in zip(alone, with_dann[3:], strict=True))
    _, resumed = target_stream(dann=False, start_step=4)
    assert all(torch.equal(a, b) for a, b in zip(resumed, alone[1:], strict=True))


def test_self_training_needs_target_images(tmp_path):
    data = make_shapes_coco(tmp_path / "synthetic", n_images=4, size=64, seed=0)
    with pytest.raises(ValueError, match="self_training.enabled needs target_images"):
        TrainConfig(**tiny_train_config(data, tmp_path / "run", self_training={"enabled": True}))
